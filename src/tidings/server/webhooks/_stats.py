"""Per-webhook delivery counters, read by ``/metrics`` at scrape time."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field


@dataclass
class WebhookStats:
    """What one webhook's deliveries did since this server started delivering it."""

    delivered: int = 0
    retries: int = 0
    # Messages given up on (a status that is not retried, or the retry limits reached).
    dropped: int = 0
    # Gaps: messages that left the retention buffer (or the topic reset) before they could be delivered.
    discontinuities: int = 0
    missed_messages: int = 0
    failures: Counter[str] = field(default_factory=Counter)
