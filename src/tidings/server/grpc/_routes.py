"""The gRPC methods as routes by path, for the transports that route calls themselves: tidings' HTTP/2
transport (``grpc/_h2``) and gRPC-web on the HTTP port (``http/_grpc_web_calls.py``). Both serve the handlers
`server.method_handlers` builds, wrapped for Momento Local's fault injection when it is on, and both name a
call's peer as grpcio does."""

from __future__ import annotations

from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from typing import Any

import grpc

from tidings.server.grpc._faults import RPCS, FaultCounters, with_faults

# A method's behaviour: the servicer's coroutine function, (request bytes, call context) -> response or None.
Behaviour = Callable[[bytes, Any], Coroutine[Any, Any, Any]]
# Checks a request's credential before its body is read: (path, ``authorization`` value or None) -> None to go
# on, or why the call is UNAUTHENTICATED (`server.credential_check`).
CredentialCheck = Callable[[str, str | None], str | None]
# grpc ``RpcMethodHandler`` tables by service name, as the servicers build them.
MethodHandlers = dict[str, dict[str, "grpc.RpcMethodHandler[Any, Any]"]]


@dataclass(frozen=True, slots=True)
class Route:
    """A method: its behaviour (the servicer's coroutine function) and whether it streams responses."""

    behaviour: Behaviour
    streaming: bool


@dataclass(frozen=True, slots=True)
class GrpcMethods:
    """The gRPC port's methods, for another port to serve (gRPC-web on the HTTP port): the handlers
    `server.method_handlers` built, the receive limit, the token check made before a body is read
    (`server.credential_check`) and whether Momento Local's fault injection applies, all as on the gRPC port."""

    handlers: MethodHandlers
    max_message_length: int
    credential_check: CredentialCheck | None = None
    fault_injection: bool = False


def routes(handlers: MethodHandlers, fault_injection: bool = False) -> dict[str, Route]:
    """Every unary and server-streaming method of ``handlers`` by path (``/cache_client.pubsub.Pubsub/Publish``);
    with ``fault_injection``, each Momento Local knows applies its fault plan first (`with_faults`)."""
    counters = FaultCounters() if fault_injection else None
    table: dict[str, Route] = {}
    for service_name, methods in handlers.items():
        for method_name, handler in methods.items():
            path = f"/{service_name}/{method_name}"
            streaming = handler.unary_stream is not None
            behaviour: Any = handler.unary_stream if streaming else handler.unary_unary
            assert behaviour is not None, f"{path} is neither unary nor server-streaming"
            rpc = RPCS.get(path)
            if counters is not None and rpc is not None:
                behaviour = with_faults(rpc, behaviour, counters)
            table[path] = Route(behaviour, streaming)
    return table


def peer_name(address: object) -> str:
    """A client's address as grpcio writes it (``ipv4:127.0.0.1:5000``, ``ipv6:[::1]:5000``), for the log;
    ``unknown`` when the transport has none."""
    if not isinstance(address, tuple | list) or len(address) < 2:
        return "unknown"
    host, port = address[0], address[1]
    return f"ipv6:[{host}]:{port}" if ":" in host else f"ipv4:{host}:{port}"
