"""Wire messages tidings defines itself, generated from the ``.proto`` files here by ``make protos``.

Shared by the server's transports and the SDK (both speak the wire protocol; neither imports the other).
"""
