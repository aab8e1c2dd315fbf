"""The order manager (OMS): the authoritative state of every order, kept in the KV bucket
`tradebus_orders`, with queries on `tradebus.ctl.oms` and reconciliation of stuck orders."""
