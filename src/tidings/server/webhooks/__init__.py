"""Webhook delivery: each webhook's messages POSTed, signed, in order and at least once (docs/webhooks.md)."""

from tidings.server.webhooks._dispatcher import WebhookDispatcher, WebhookStatus
from tidings.server.webhooks._events import event_body
from tidings.server.webhooks._http import MAX_RESPONSE_BYTES, WebhookSender, check_public, user_agent
from tidings.server.webhooks._leases import LeaseStore, WebhookLeases
from tidings.server.webhooks._retry import Outcome, RetryPolicy, Verdict, deliver_with_retries, outcome_of_status
from tidings.server.webhooks._stats import WebhookStats
from tidings.server.webhooks._worker import WebhookWorker

__all__ = [
    "MAX_RESPONSE_BYTES",
    "LeaseStore",
    "Outcome",
    "RetryPolicy",
    "Verdict",
    "WebhookDispatcher",
    "WebhookLeases",
    "WebhookSender",
    "WebhookStats",
    "WebhookStatus",
    "WebhookWorker",
    "check_public",
    "deliver_with_retries",
    "event_body",
    "outcome_of_status",
    "user_agent",
]
