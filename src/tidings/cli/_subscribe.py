"""``tidings subscribe``: print a topic's items as they arrive (human-readable lines, or JSON lines)."""

from __future__ import annotations

import base64
import functools
import json
import sys
import threading
from collections.abc import Callable
from types import TracebackType
from typing import Any, Final

import click
from rich.console import Console
from rich.markup import escape

from tidings import SubscriptionItem, TopicClient, TopicSubscribe, TopicSubscriptionItem
from tidings.cli._client import client_arguments, client_command, connection_options, fail, refuse_unreachable

# How often the reconnection watcher looks at the subscription's statistics (each look is two attribute reads).
_WATCH_INTERVAL: Final = 0.1


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
    arguments = client_arguments(endpoint, api_key, timeout)
    refuse_unreachable(arguments["endpoint"], timeout, "subscribe failed")
    with TopicClient(**arguments) as client:
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
        with _Reconnections(subscription) as reconnections:
            for item in subscription:
                if isinstance(item, TopicSubscriptionItem.Error):
                    fail(item, "subscription ended")
                reconnections.item_arrived()
                if isinstance(item, TopicSubscriptionItem.Heartbeat) and not events:
                    continue
                print_item(item)
                if isinstance(item, TopicSubscriptionItem.Text | TopicSubscriptionItem.Binary):
                    received += 1
                    if received == count:
                        return


class _Reconnections:
    """Says on stderr, once each, that a subscription's stream broke and it is reconnecting (as soon as its
    first new stream is tried), and that it reconnected (when the new stream's first item arrived).

    The SDK resubscribes by itself and tells only its statistics, so a thread looks at them: an item the
    iterator is blocked waiting for cannot tell that nothing comes because the server is gone.
    """

    def __init__(self, subscription: TopicSubscribe.Subscription) -> None:
        self._subscription = subscription
        self._told = 0  # the resubscriptions accounted for by a "reconnected" line
        self._reconnecting = False
        self._lock = threading.Lock()
        self._stopped = threading.Event()
        self._watcher = threading.Thread(target=self._watch, name="tidings-cli-reconnections", daemon=True)

    def __enter__(self) -> _Reconnections:
        self._watcher.start()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self._stopped.set()
        self._watcher.join()

    def item_arrived(self) -> None:
        """An item came: if it came on a new stream, say that the subscription reconnected."""
        with self._lock:  # held while saying it, so that "reconnecting" cannot come after it
            resubscriptions = self._subscription.statistics().resubscriptions
            if resubscriptions == self._told:
                return
            self._told, self._reconnecting = resubscriptions, False
            resume_at, page = self._subscription.resume_at_sequence_number, self._subscription.sequence_page
            where = f"from #{resume_at} in page {page}" if resume_at else "live"
            click.echo(f"reconnected: the stream broke (server restart or lost connection); resumed {where}", err=True)

    def _watch(self) -> None:
        while not self._stopped.wait(_WATCH_INTERVAL):
            with self._lock:
                if self._reconnecting or self._subscription.statistics().resubscriptions == self._told:
                    continue
                self._reconnecting = True
                click.echo("reconnecting: the stream broke (server restart or lost connection); trying again", err=True)


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
