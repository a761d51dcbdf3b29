"""The gRPC transport: Momento's public protos (``momento-wire-types``) to and from the core."""
