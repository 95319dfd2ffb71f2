"""Pieces every HTTP + WebSocket broker adapter shares (KIS now, Kiwoom next): typed broker
errors, an on-disk token cache shared by processes, a cross-process rate limiter, a
reconnecting WebSocket client and KST time helpers."""
