"""tidings: a self-hosted, Momento-wire-compatible Topics (publish/subscribe) service, SDK and CLI."""

__all__: list[str] = []
