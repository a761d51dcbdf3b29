"""``tidings subscribe``: print a topic's items as they arrive (human-readable lines, or JSON lines)."""

from __future__ import annotations

import base64
import functools
import json
import sys
from collections.abc import Callable
from typing import Any

import click
from rich.console import Console
from rich.markup import escape

from tidings import SubscriptionItem, TopicClient, TopicSubscribe, TopicSubscriptionItem
from tidings.cli._client import client_arguments, client_command, connection_options, fail


@click.command()
@click.argument("cache")
@click.argument("topic")
@click.option(
    "--from",
    "resume_at",
    type=click.IntRange(0),
    default=0,
    metavar="SEQ",
    help="Start at sequence number SEQ (replaying what the topic retained); 0 starts with the newest message.",
)
@click.option("--page", type=click.IntRange(0), default=0, help="The sequence page SEQ belongs to (0: current).")
@click.option("--count", type=click.IntRange(1), default=None, metavar="N", help="Exit after N items.")
@click.option("--events", is_flag=True, help="Also print heartbeats and discontinuities.")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object per line.")
@click.option(
    "--binary-format",
    type=click.Choice(["base64", "hex"]),
    default="base64",
    show_default=True,
    help="How binary values are printed.",
)
@connection_options
@client_command
def subscribe(
    cache: str,
    topic: str,
    resume_at: int,
    page: int,
    count: int | None,
    events: bool,
    as_json: bool,
    binary_format: str,
    endpoint: str | None,
    api_key: str | None,
    timeout: float,
) -> None:
    """Print the items published to TOPIC in CACHE until Ctrl-C (or --count items).

    Each line shows the sequence number, page and publisher token id of an item, then its value (binary
    values in base64 or hex); it resubscribes by itself if the connection breaks, and says so on stderr.
    """
    encode = _BINARY_FORMATS[binary_format]
    print_item = functools.partial(_print_json, encode=encode) if as_json else _HumanPrinter(encode).print
    with TopicClient(**client_arguments(endpoint, api_key, timeout)) as client:
        subscription = client.subscribe(
            cache,
            topic,
            resume_at_sequence_number=resume_at,
            resume_at_sequence_page=page,
            # Heartbeats always: the first one on a new stream tells that a resubscription succeeded.
            include_heartbeats=True,
            include_discontinuities=events,
        )
        if isinstance(subscription, TopicSubscribe.Error):
            fail(subscription, "subscribe failed")
        received = 0
        resubscriptions = 0
        for item in subscription:
            if isinstance(item, TopicSubscriptionItem.Error):
                fail(item, "subscription ended")
            if subscription.statistics().resubscriptions > resubscriptions:
                resubscriptions = subscription.statistics().resubscriptions
                _say_resubscribed(subscription.resume_at_sequence_number, subscription.sequence_page)
            if isinstance(item, TopicSubscriptionItem.Heartbeat) and not events:
                continue
            print_item(item)
            if isinstance(item, TopicSubscriptionItem.Text | TopicSubscriptionItem.Binary):
                received += 1
                if received == count:
                    return


def _say_resubscribed(resume_at: int, page: int) -> None:
    """One line on stderr when a broken stream (a server restart, a lost connection) was replaced."""
    where = f"from #{resume_at} in page {page}" if resume_at else "live"
    click.echo(f"reconnected: the stream broke (server restart or lost connection); resumed {where}", err=True)


def _base64(value: bytes) -> str:
    return base64.b64encode(value).decode("ascii")


_BINARY_FORMATS: dict[str, Callable[[bytes], str]] = {"base64": _base64, "hex": bytes.hex}


def as_json_object(item: SubscriptionItem, encode: Callable[[bytes], str] = _base64) -> dict[str, Any]:
    """The ``--json`` form of an item (binary values in base64, or as ``encode`` writes them)."""
    match item:
        case TopicSubscriptionItem.Text(value, number, page, token_id):
            return {
                "type": "text",
                "value": value,
                "sequence_number": number,
                "sequence_page": page,
                "token_id": token_id,
            }
        case TopicSubscriptionItem.Binary(value, number, page, token_id):
            return {
                "type": "binary",
                "value": encode(value),
                "encoding": "hex" if encode is bytes.hex else "base64",
                "sequence_number": number,
                "sequence_page": page,
                "token_id": token_id,
            }
        case TopicSubscriptionItem.Discontinuity(last, new, new_page):
            return {
                "type": "discontinuity",
                "last_sequence_number": last,
                "new_sequence_number": new,
                "new_sequence_page": new_page,
            }
        case TopicSubscriptionItem.Heartbeat():
            return {"type": "heartbeat"}
        case _:
            return {"type": "error", "error_code": item.error_code.name, "message": item.message}


def _print_json(item: SubscriptionItem, encode: Callable[[bytes], str]) -> None:
    sys.stdout.write(json.dumps(as_json_object(item, encode), ensure_ascii=False) + "\n")
    sys.stdout.flush()


class _HumanPrinter:
    """``#SEQ page PAGE [token ID]  VALUE`` lines; heartbeats and discontinuities dimmed."""

    def __init__(self, encode: Callable[[bytes], str]) -> None:
        self._console = Console(highlight=False, soft_wrap=True)
        self._encode = encode
        self._encoding = "hex" if encode is bytes.hex else "base64"

    def print(self, item: SubscriptionItem) -> None:
        match item:
            case TopicSubscriptionItem.Text(value, number, page, token_id) | TopicSubscriptionItem.Binary(
                value, number, page, token_id
            ):
                token = f" token {escape(token_id)}" if token_id else ""
                if isinstance(value, str):
                    shown = escape(value)
                else:
                    shown = f"[dim]{len(value)} bytes {self._encoding}:[/dim] {self._encode(value)}"
                self._console.print(f"[bold]#{number}[/bold] [dim]page {page}{token}[/dim]  {shown}")
            case TopicSubscriptionItem.Heartbeat():
                self._console.print("[dim]heartbeat[/dim]")
            case TopicSubscriptionItem.Discontinuity(last, new, page):
                self._console.print(
                    f"[yellow]discontinuity[/yellow] [dim]had #{last}; items resume after #{new} in page {page}[/dim]"
                )
        self._console.file.flush()
