"""The tidings server: a self-hosted, Momento-wire-compatible Topics service."""
