"""What every transport (gRPC over h2, HTTP) does alike with its connections: at most so many from one client
address, and log lines about hostile or misdirected clients that a flood cannot multiply."""

from tidings.server.connections._notices import NOTICE_INTERVAL, Notices, WrongPortNotices
from tidings.server.connections._peers import ConnectionsPerAddress, peer_address

__all__ = ["NOTICE_INTERVAL", "ConnectionsPerAddress", "Notices", "WrongPortNotices", "peer_address"]
