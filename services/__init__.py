"""QTS services: one package per OS process, plus the shared runtime and the qts-ctl CLI."""
