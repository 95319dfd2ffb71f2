"""The strategy service: hosts strategy plugins (Evaluate); they emit order intents only."""
