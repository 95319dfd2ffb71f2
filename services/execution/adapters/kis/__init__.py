"""The KIS (한국투자증권) Open API adapter: REST orders and queries, WebSocket execution
notices. wire.py is the protocol (pure functions), rest.py the HTTP client, ledger.py the
fills this adapter reported, adapter.py the BrokerAdapter. docs/brokers/kis.md."""
