"""``tidings publish``: publish a value, each line of stdin, or a file's bytes."""

from __future__ import annotations

import sys
from typing import BinaryIO

import click

from tidings import TopicClient, TopicPublish
from tidings.cli._client import client_arguments, client_command, connection_options, fail


@click.command()
@click.argument("cache")
@click.argument("topic")
@click.argument("value", required=False)
@click.option(
    "--binary",
    "binary_file",
    type=click.File("rb"),
    default=None,
    metavar="FILE",
    help="Publish the bytes of FILE ('-' for stdin) as a binary value instead of VALUE.",
)
@connection_options
@client_command
def publish(
    cache: str,
    topic: str,
    value: str | None,
    binary_file: BinaryIO | None,
    endpoint: str | None,
    api_key: str | None,
    timeout: float,
) -> None:
    """Publish VALUE (text) to TOPIC in CACHE; VALUE '-' publishes each line of stdin (blank lines skipped)."""
    if (value is None) == (binary_file is None):
        raise click.UsageError("give either VALUE or --binary FILE")
    with TopicClient(**client_arguments(endpoint, api_key, timeout)) as client:
        if binary_file is not None:
            _publish(client, cache, topic, binary_file.read())
        elif value == "-":
            _publish_lines(client, cache, topic, sys.stdin.buffer)
        else:
            assert value is not None
            _publish(client, cache, topic, value)


def _publish(client: TopicClient, cache: str, topic: str, value: str | bytes) -> None:
    response = client.publish(cache, topic, value)
    if isinstance(response, TopicPublish.Error):
        fail(response, "publish failed")


def _publish_lines(client: TopicClient, cache: str, topic: str, lines: BinaryIO) -> None:
    """Publish each non-blank line as text; stop, naming the line and how many went before it, at one that is
    not UTF-8 or whose publish fails (over the size limit, say)."""
    published = 0
    for number, line in enumerate(lines, start=1):
        try:
            text = line.decode("utf-8").rstrip("\r\n")
        except UnicodeDecodeError:
            raise click.ClickException(
                f"line {number} of stdin is not UTF-8 text; {_lines(published)} before it published, none after "
                "(publish bytes with --binary -)"
            ) from None
        if text:
            response = client.publish(cache, topic, text)
            if isinstance(response, TopicPublish.Error):
                fail(
                    response,
                    f"publish failed at line {number} of stdin ({_lines(published)} before it published, none after)",
                )
            published += 1


def _lines(count: int) -> str:
    return f"{count} line was" if count == 1 else f"{count} lines were"
