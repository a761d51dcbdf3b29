"""Unit tests of the core rules: no sockets, an injected clock, no sleeps."""
