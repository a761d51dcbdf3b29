"""The publishing microservice end to end: callers POST to it, a subscriber of a real tidings server receives."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import httpx
import pytest
from publisher_service import app_from_env, create_app

from tidings import TopicClientAsync, TopicSubscribe, TopicSubscriptionItem
from tidings.testing import RunningServer

TOKEN = "s3cret-caller-token"
WITHIN = 10.0


@pytest.fixture
def tidings_server_options() -> dict[str, object]:
    return {"create_caches": ["items"]}


@pytest.fixture
async def topics(tidings_server: RunningServer) -> AsyncIterator[TopicClientAsync]:
    async with TopicClientAsync(tidings_server.endpoint) as client:
        yield client


@pytest.fixture
async def service(topics: TopicClientAsync) -> AsyncIterator[httpx.AsyncClient]:
    """The service, called in process (httpx's ASGI transport) with the right bearer token by default."""
    app = create_app(topics, "items", TOKEN)
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(
        transport=transport, base_url="http://publisher", headers={"authorization": f"Bearer {TOKEN}"}
    ) as client:
        yield client


async def test_published_items_reach_a_subscriber(service: httpx.AsyncClient, topics: TopicClientAsync) -> None:
    subscription = await topics.subscribe("items", "new-items")
    assert isinstance(subscription, TopicSubscribe.SubscriptionAsync)

    responses = [
        await service.post("/publish", json={"topicName": "new-items", "topicValue": f"item-{number}"})
        for number in (1, 2)
    ]
    received = []
    while len(received) < 2:
        item = await asyncio.wait_for(subscription.__anext__(), WITHIN)
        if isinstance(item, TopicSubscriptionItem.Text):
            received.append((item.sequence_number, item.value))
    subscription.unsubscribe()

    assert [response.status_code for response in responses] == [200, 200]
    assert responses[0].json() == {"published": {"cacheName": "items", "topicName": "new-items"}}
    assert received == [(1, "item-1"), (2, "item-2")]


@pytest.mark.parametrize("authorization", [None, "Bearer wrong", TOKEN], ids=["missing", "wrong", "not-bearer"])
async def test_callers_need_the_bearer_token(service: httpx.AsyncClient, authorization: str | None) -> None:
    headers = {"authorization": authorization} if authorization else {}
    if authorization is None:
        del service.headers["authorization"]

    response = await service.post("/publish", json={"topicName": "t", "topicValue": "v"}, headers=headers)

    assert response.status_code == 401
    assert response.headers["www-authenticate"] == "Bearer"


@pytest.mark.parametrize(
    ("body", "status"),
    [
        (b"not json", 400),
        (b"[1, 2]", 400),
        (b'{"topicName": "t"}', 400),
        (b'{"topicName": "t", "topicValue": 5}', 400),
        (b'{"topicName": "", "topicValue": "v"}', 400),
        (b'{"topicName": "t", "topicValue": "' + b"x" * 5000 + b'"}', 413),
    ],
    ids=["not-json", "not-object", "no-value", "number", "empty-topic", "too-large"],
)
async def test_bad_requests_are_refused(service: httpx.AsyncClient, body: bytes, status: int) -> None:
    response = await service.post("/publish", content=body, headers={"content-type": "application/json"})

    assert response.status_code == status
    assert "error" in response.json()


async def test_a_missing_cache_is_the_services_fault(topics: TopicClientAsync) -> None:
    app = create_app(topics, "no-such-cache", TOKEN)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://publisher") as client:
        response = await client.post(
            "/publish", json={"topicName": "t", "topicValue": "v"}, headers={"authorization": f"Bearer {TOKEN}"}
        )

    assert response.status_code == 502


def test_a_bearer_token_is_required(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("PUBLISHER_TOKEN", raising=False)

    with pytest.raises(ValueError, match="PUBLISHER_TOKEN"):
        app_from_env()


async def test_app_from_env_serves_and_closes_its_client(
    tidings_server: RunningServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TIDINGS_ENDPOINT", tidings_server.endpoint)
    monkeypatch.setenv("PUBLISHER_CACHE", "items")
    monkeypatch.setenv("PUBLISHER_TOKEN", TOKEN)
    app = app_from_env()

    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://publisher") as client,
    ):
        response = await client.post(
            "/publish", json={"topicName": "t", "topicValue": "v"}, headers={"authorization": f"Bearer {TOKEN}"}
        )

    assert response.status_code == 200
