"""The execution service (Act): the only process that talks to a broker."""
