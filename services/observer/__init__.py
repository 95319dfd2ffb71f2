"""The observer service: Extract market data from a source, Transform it to protocol types."""
