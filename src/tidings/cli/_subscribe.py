"""``tidings subscribe``: print a topic's items as they arrive (human-readable lines, or JSON lines)."""

from __future__ import annotations

import base64
import json
import sys
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
    endpoint: str | None,
    api_key: str | None,
    timeout: float,
) -> None:
    """Print the items published to TOPIC in CACHE until Ctrl-C (or --count items).

    Each line shows the sequence number, page and publisher token id of an item, then its value; it
    resubscribes by itself if the connection breaks.
    """
    print_item = _print_json if as_json else _HumanPrinter().print
    with TopicClient(**client_arguments(endpoint, api_key, timeout)) as client:
        subscription = client.subscribe(
            cache,
            topic,
            resume_at_sequence_number=resume_at,
            resume_at_sequence_page=page,
            include_heartbeats=events,
            include_discontinuities=events,
        )
        if isinstance(subscription, TopicSubscribe.Error):
            fail(subscription, "subscribe failed")
        received = 0
        for item in subscription:
            if isinstance(item, TopicSubscriptionItem.Error):
                fail(item, "subscription ended")
            print_item(item)
            if isinstance(item, TopicSubscriptionItem.Text | TopicSubscriptionItem.Binary):
                received += 1
                if received == count:
                    return


def as_json_object(item: SubscriptionItem) -> dict[str, Any]:
    """The ``--json`` form of an item (binary values in base64)."""
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
            encoded = base64.b64encode(value).decode("ascii")
            return {
                "type": "binary",
                "value": encoded,
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


def _print_json(item: SubscriptionItem) -> None:
    sys.stdout.write(json.dumps(as_json_object(item), ensure_ascii=False) + "\n")
    sys.stdout.flush()


class _HumanPrinter:
    """``#SEQ page PAGE [token ID]  VALUE`` lines; heartbeats and discontinuities dimmed."""

    def __init__(self) -> None:
        self._console = Console(highlight=False, soft_wrap=True)

    def print(self, item: SubscriptionItem) -> None:
        match item:
            case TopicSubscriptionItem.Text(value, number, page, token_id) | TopicSubscriptionItem.Binary(
                value, number, page, token_id
            ):
                token = f" token {escape(token_id)}" if token_id else ""
                shown = escape(value) if isinstance(value, str) else escape(repr(value))
                self._console.print(f"[bold]#{number}[/bold] [dim]page {page}{token}[/dim]  {shown}")
            case TopicSubscriptionItem.Heartbeat():
                self._console.print("[dim]heartbeat[/dim]")
            case TopicSubscriptionItem.Discontinuity(last, new, page):
                self._console.print(
                    f"[yellow]discontinuity[/yellow] [dim]had #{last}; items resume after #{new} in page {page}[/dim]"
                )
        self._console.file.flush()
