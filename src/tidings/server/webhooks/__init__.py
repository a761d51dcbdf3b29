"""Webhooks on the server side (docs/webhooks.md): the registry of what each webhook is, kept in the store, and
their delivery: each webhook's messages POSTed, signed, in order and at least once.

(Receivers verify signatures with the SDK's ``tidings.webhooks``.)
"""

from tidings.server.webhooks._addresses import PrivateAddress, check_public
from tidings.server.webhooks._dispatcher import WebhookDispatcher, WebhookStatus
from tidings.server.webhooks._events import event_body
from tidings.server.webhooks._http import WebhookSender, user_agent
from tidings.server.webhooks._leases import Leases, LeaseStore, SoleNodeLeases, WebhookLeases
from tidings.server.webhooks._registry import (
    Webhook,
    WebhookListener,
    WebhookRegistry,
    WebhookStore,
    new_secret,
    validate_url,
)
from tidings.server.webhooks._response import MAX_RESPONSE_BYTES
from tidings.server.webhooks._retry import Outcome, RetryPolicy, Verdict, deliver_with_retries, outcome_of_status
from tidings.server.webhooks._stats import WebhookStats
from tidings.server.webhooks._worker import WebhookWorker

__all__ = [
    "MAX_RESPONSE_BYTES",
    "LeaseStore",
    "Leases",
    "Outcome",
    "PrivateAddress",
    "RetryPolicy",
    "SoleNodeLeases",
    "Verdict",
    "Webhook",
    "WebhookDispatcher",
    "WebhookLeases",
    "WebhookListener",
    "WebhookRegistry",
    "WebhookSender",
    "WebhookStats",
    "WebhookStatus",
    "WebhookStore",
    "WebhookWorker",
    "check_public",
    "deliver_with_retries",
    "event_body",
    "new_secret",
    "outcome_of_status",
    "user_agent",
    "validate_url",
]
