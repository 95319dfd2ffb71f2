"""External market-data sources: the Observer protocol (wire.py), the feed's pure state
(feed.py), the Unix-socket and ZeroMQ transports (transport.py) and the source the observer
service polls (external.py). docs/observer_integration.md specifies the protocol."""
