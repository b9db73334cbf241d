"""Wire formats and streaming transports."""
