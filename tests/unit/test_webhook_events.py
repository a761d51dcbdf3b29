"""The webhook event body, its signature, and the private-address guard."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json

import pytest

from tidings.server.core import Message
from tidings.server.webhooks import PrivateAddress, check_public, event_body, user_agent
from tidings.webhooks import sign, verify


def test_text_event_has_momentos_fields_in_order_then_the_page() -> None:
    # Act
    body = event_body("c", "t", Message(77, 5, "héllo", "tok", 6), 1_700_000_000_123, 1_700_000_000_456)

    # Assert
    assert (
        body
        == (
            '{"cache":"c","topic":"t","event_timestamp":1700000000456,"publish_timestamp":1700000000123,'
            '"topic_sequence_number":5,"token_id":"tok","text":"héllo","sequence_page":77}'
        ).encode()
    )


def test_binary_event_carries_base64() -> None:
    # Act
    event = json.loads(event_body("c", "t", Message(1, 1, b"\x00\xff", "", 2), 0, 0))

    # Assert
    assert "text" not in event
    assert base64.b64decode(event["binary"]) == b"\x00\xff"


def test_signature_is_lowercase_hex_hmac_sha3_256_of_the_exact_body() -> None:
    # Arrange
    body = b'{"text":"x"}'

    # Act
    signature = sign(body, "s3cret")

    # Assert
    assert signature == hmac.new(b"s3cret", body, hashlib.sha3_256).hexdigest()
    assert signature == signature.lower()
    assert verify(body, signature, "s3cret")
    assert verify(body, signature.upper(), "s3cret")
    assert not verify(body + b" ", signature, "s3cret")
    assert not verify(body, signature, "other")


def test_user_agent_names_tidings_and_its_version() -> None:
    assert user_agent().startswith("tidings-webhooks/")
    assert user_agent().split("/")[1]


@pytest.mark.parametrize(
    "url",
    [
        "http://127.0.0.1:8000/",
        "http://10.1.2.3/",
        "http://192.168.0.1/",
        "http://169.254.169.254/latest/meta-data",
        "http://[::1]/",
        "http://[::ffff:127.0.0.1]/",
        "http://[fd00::1]/",
        "http://0.0.0.0/",
        "http://100.64.0.1/",
        "http://localhost:9/",
    ],
)
async def test_private_addresses_are_refused(url: str) -> None:
    with pytest.raises(PrivateAddress):
        await check_public(url)


@pytest.mark.parametrize("url", ["http://8.8.8.8/", "https://[2606:4700:4700::1111]/"])
async def test_public_addresses_pass(url: str) -> None:
    await check_public(url)
