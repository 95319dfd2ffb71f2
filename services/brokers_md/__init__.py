"""Broker market data, normalised to protocol types: neutral ground between the observer (which
publishes market data) and execution (which owns the broker adapters). Depends on protocol/,
the runtime and the WebSocket client only, never on services.execution (.importlinter: only
execution talks to brokers over HTTP), so the observer may use it."""
