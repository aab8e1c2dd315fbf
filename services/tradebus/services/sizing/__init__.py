"""Position sizing: a quantity from an account's equity and an instrument's rules, on request."""
