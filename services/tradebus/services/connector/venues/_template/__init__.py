"""A venue to copy, not a venue: `cp -r _template <venue>`, then README.md step by step.

No spec line names it (connector/venuespecs.py), so no connector process can run it, and the
wheel leaves it out (pyproject.toml). tests/unit/test_venue_template.py copies it to a
throw-away venue and checks that the copy is a complete venue.
"""
