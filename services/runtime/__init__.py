"""The small runtime every QTS service shares: settings, logging, the loop, KRX rules."""
