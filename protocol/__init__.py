"""QTS wire protocol: msgspec Structs, one union and decoder per socket, endpoint names."""
