"""A token is read the same way over gRPC and HTTP: raw or ``Bearer <token>`` (issue 11, item 13)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable

import grpc
import grpc.aio
import httpx
import pytest
from momento_wire_types import cachepubsub_pb2, cachepubsub_pb2_grpc

from tests.integration._server import ServerProcess

StartServer = Callable[..., ServerProcess]


@pytest.fixture
def auth_server(start_server: StartServer) -> ServerProcess:
    """A server where every call needs a token, with a cache "c"."""
    return start_server("--require-auth", "--create-cache", "c")


@pytest.fixture
async def pubsub(auth_server: ServerProcess) -> AsyncIterator[cachepubsub_pb2_grpc.PubsubStub]:
    async with grpc.aio.insecure_channel(auth_server.endpoint) as channel:
        yield cachepubsub_pb2_grpc.PubsubStub(channel)


def _admin_key(server: ServerProcess) -> str:
    return (server.data_dir / "admin.key").read_text().strip()


def _publish_request() -> cachepubsub_pb2._PublishRequest:
    return cachepubsub_pb2._PublishRequest(cache_name="c", topic="t", value=cachepubsub_pb2._TopicValue(text="v"))


@pytest.mark.parametrize("scheme", ["Bearer ", "bearer ", "BEARER  ", ""], ids=["Bearer", "lower", "upper", "raw"])
async def test_grpc_accepts_the_token_raw_or_as_bearer(
    auth_server: ServerProcess, pubsub: cachepubsub_pb2_grpc.PubsubStub, scheme: str
) -> None:
    metadata = (("authorization", f"{scheme}{_admin_key(auth_server)}"),)

    await pubsub.Publish(_publish_request(), metadata=metadata, timeout=10)


async def test_grpc_refuses_a_bearer_with_a_bad_token(pubsub: cachepubsub_pb2_grpc.PubsubStub) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as error:
        await pubsub.Publish(_publish_request(), metadata=(("authorization", "Bearer nonsense"),), timeout=10)

    assert error.value.code() == grpc.StatusCode.UNAUTHENTICATED


async def test_http_refuses_two_token_parameters(auth_server: ServerProcess) -> None:
    key = _admin_key(auth_server)
    text = {"content-type": "text/plain"}
    async with httpx.AsyncClient(base_url=auth_server.http_url, timeout=30) as http:
        # The good token last: "last wins" would publish.
        twice = await http.post(f"/topics/c/t?token=nonsense&token={key}", content="v", headers=text)
        once = await http.post(f"/topics/c/t?token={key}", content="v", headers=text)

    assert twice.status_code == 400, twice.text
    assert twice.json()["error"]["code"] == "invalid_argument"
    assert once.status_code == 204, once.text
