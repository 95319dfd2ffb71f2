"""The risk service (Decide): pre-trade checks on every intent."""
