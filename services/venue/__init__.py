"""The paper venue: a simulated KRX broker, its own process, outside the trading system."""
