"""Kiwoom (키움증권) REST API + WebSocket broker adapter (docs/brokers/kiwoom.md)."""
