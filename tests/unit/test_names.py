"""Cache and topic names: 1 to 255 bytes of UTF-8, no control characters (PROTOCOL.md *Caches and topics*)."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tidings.server.core import MAX_NAME_BYTES, InvalidArgument, validate_name

VALID = {
    "ascii": "my-cache",
    "single-char": "a",
    "space": "a b",
    "punctuation": "topic/with:punct.and_more~",
    "latin": "café",
    "cjk": "日本語のトピック",
    "emoji": "alerts-😀",
    "nbsp-after-c1": "a\u00a0b",
    "line-separator-is-not-a-control": "a\u2028b",
    "255-ascii": "a" * 255,
    "255-two-byte": "é" * 127 + "a",
    "255-three-byte": "€" * 85,
    "255-four-byte": "😀" * 63 + "abc",
    "255-ascii-then-four-byte": "a" * 251 + "😀",
}

TOO_LONG = {
    "256-ascii": "a" * 256,
    "256-two-byte": "é" * 128,
    "256-three-byte": "€" * 85 + "a",
    "256-four-byte": "😀" * 64,
    "256-ascii-then-four-byte": "a" * 252 + "😀",
    "far-too-long": "x" * 10_000,
}

CONTROL = {
    "nul": "a\x00b",
    "unit-separator": "a\x1fb",
    "tab": "a\tb",
    "newline": "a\nb",
    "carriage-return": "a\rb",
    "del": "a\x7fb",
    "c1-first": "a\x80b",
    "c1-nel": "a\x85b",
    "c1-last": "a\x9fb",
    "only-control": "\x00",
    "leading-control": "\x1bname",
    "trailing-control": "name\x7f",
}


@pytest.mark.parametrize("name", VALID.values(), ids=VALID.keys())
def test_validate_name_accepts_valid_unicode(name: str) -> None:
    # Act
    result = validate_name("topic_name", name)

    # Assert
    assert result == name
    assert 1 <= len(result.encode("utf-8")) <= MAX_NAME_BYTES


@pytest.mark.parametrize("field", ["cache_name", "topic_name"])
def test_validate_name_rejects_empty_naming_the_field(field: str) -> None:
    with pytest.raises(InvalidArgument, match=rf"^{field} must not be empty$"):
        validate_name(field, "")


@pytest.mark.parametrize("name", TOO_LONG.values(), ids=TOO_LONG.keys())
def test_validate_name_rejects_over_255_utf8_bytes(name: str) -> None:
    # Arrange
    assert len(name.encode("utf-8")) > MAX_NAME_BYTES

    # Act
    with pytest.raises(InvalidArgument) as raised:
        validate_name("cache_name", name)

    # Assert
    assert raised.value.message == "cache_name must be at most 255 bytes of UTF-8"


@pytest.mark.parametrize("name", CONTROL.values(), ids=CONTROL.keys())
def test_validate_name_rejects_control_characters(name: str) -> None:
    with pytest.raises(InvalidArgument, match=r"^topic_name must not contain control characters$"):
        validate_name("topic_name", name)


@pytest.mark.parametrize(
    "name",
    ["a\ud800b", "\udfff", "x" * 10 + "\udc80"],
    ids=["lone-high-surrogate", "lone-low-surrogate", "trailing-lone-surrogate"],
)
def test_validate_name_rejects_strings_that_are_not_utf8(name: str) -> None:
    # A lone surrogate has no UTF-8 encoding, so such a name is not "bytes of UTF-8" (PROTOCOL.md).
    with pytest.raises(InvalidArgument, match="cache_name"):
        validate_name("cache_name", name)


def _is_control(character: str) -> bool:
    code = ord(character)
    return code < 0x20 or 0x7F <= code <= 0x9F


@given(st.text(alphabet=st.characters(exclude_categories=["Cs"]), max_size=300))
def test_validate_name_accepts_exactly_the_names_protocol_allows(name: str) -> None:
    # Arrange
    allowed = 1 <= len(name.encode("utf-8")) <= MAX_NAME_BYTES and not any(_is_control(c) for c in name)

    # Act / Assert
    if allowed:
        assert validate_name("topic_name", name) == name
    else:
        with pytest.raises(InvalidArgument, match=r"^topic_name "):
            validate_name("topic_name", name)
