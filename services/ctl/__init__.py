"""qts-ctl: the operator's command line."""
