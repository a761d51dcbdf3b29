"""Client-side argument checks: INVALID_ARGUMENT at once, with a message naming the field, and no network call."""

from __future__ import annotations

import pytest

from tidings import CacheClientAsync, ErrorCode, TopicClientAsync, TopicPublish, TopicSubscribe
from tidings.client._validation import name_problem, sequence_problem, value_problem

# Nothing listens on port 1: a call that reached the network would fail with UNAVAILABLE, not INVALID_ARGUMENT.
NOWHERE = "127.0.0.1:1"


@pytest.mark.parametrize(
    "name",
    ["a", "orders", "é" * 127, "x" * 255, "名前", "with space", "emoji-🙂"],
    ids=["one", "plain", "254-bytes", "255-bytes", "cjk", "space", "emoji"],
)
def test_client_validation_accepts_names(name: str) -> None:
    assert name_problem("cache_name", name) is None


@pytest.mark.parametrize(
    ("name", "fragment"),
    [
        ("", "must not be empty"),
        ("x" * 256, "at most 255 bytes"),
        ("é" * 128, "at most 255 bytes"),
        ("a\x00b", "control characters"),
        ("line\n", "control characters"),
        ("del\x7f", "control characters"),
        ("c1\x85", "control characters"),
        ("\ud800", "UTF-8"),
        (b"bytes", "must be a str"),
        (None, "must be a str"),
    ],
    ids=["empty", "256-bytes", "256-bytes-utf8", "nul", "newline", "del", "c1", "surrogate", "bytes", "none"],
)
def test_client_validation_refuses_names(name: object, fragment: str) -> None:
    problem = name_problem("topic_name", name)

    assert problem is not None
    assert problem.startswith("topic_name")
    assert fragment in problem


@pytest.mark.parametrize("value", ["", b"", 1, None, ["x"]], ids=["empty-str", "empty-bytes", "int", "none", "list"])
def test_client_validation_refuses_values(value: object) -> None:
    assert value_problem(value) is not None


@pytest.mark.parametrize("number", [-1, 2**64, True, 1.0], ids=["negative", "too-big", "bool", "float"])
def test_client_validation_refuses_sequence_numbers(number: object) -> None:
    assert sequence_problem("resume_at_sequence_number", number) is not None


@pytest.mark.parametrize(
    ("cache_name", "topic_name", "value"),
    [("", "t", "v"), ("c", "x" * 256, "v"), ("c", "t", ""), ("c", "t", 42), ("c", "t", "\ud800")],
    ids=["empty-cache", "long-topic", "empty-value", "int-value", "surrogate-value"],
)
async def test_client_validation_publish_answers_invalid_argument_without_a_call(
    cache_name: str, topic_name: str, value: str
) -> None:
    async with TopicClientAsync(NOWHERE, timeout=30) as client:
        response = await client.publish(cache_name, topic_name, value)

    assert isinstance(response, TopicPublish.Error)
    assert response.error_code is ErrorCode.INVALID_ARGUMENT
    assert response.inner_exception is None


@pytest.mark.parametrize(
    "arguments",
    [
        {"cache_name": "c", "topic_name": "a\nb"},
        {"cache_name": "c", "topic_name": "t", "resume_at_sequence_number": -1},
        {"cache_name": "c", "topic_name": "t", "resume_at_sequence_page": 2**64},
    ],
    ids=["topic", "sequence", "page"],
)
async def test_client_validation_subscribe_answers_invalid_argument_without_a_call(
    arguments: dict[str, object],
) -> None:
    async with TopicClientAsync(NOWHERE, timeout=30) as client:
        response = await client.subscribe(**arguments)  # type: ignore[arg-type]

    assert isinstance(response, TopicSubscribe.Error)
    assert response.error_code is ErrorCode.INVALID_ARGUMENT


async def test_client_validation_cache_names() -> None:
    async with CacheClientAsync(NOWHERE, timeout=30) as client:
        responses = [await client.create_cache(""), await client.delete_cache("a\x00")]

    assert [response.error_code for response in responses] == [ErrorCode.INVALID_ARGUMENT] * 2  # type: ignore[union-attr]
