"""The supervisor service: owns the kill switch and the trading state, watches heartbeats."""
