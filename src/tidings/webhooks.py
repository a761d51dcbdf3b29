"""Verifying tidings (and Momento) webhook deliveries in a receiver.

Every delivery is a POST whose body is a JSON event and whose ``momento-signature`` header is the lowercase hex
HMAC-SHA3-256 of the exact body bytes under the webhook's secret (what PutWebhook and GetWebhookSecret answer)::

    from tidings.webhooks import SIGNATURE_HEADER, verify

    if not verify(await request.body(), request.headers.get(SIGNATURE_HEADER, ""), secret):
        return Response(status_code=401)
"""

from __future__ import annotations

import hashlib
import hmac
from typing import Final

__all__ = ["SIGNATURE_HEADER", "sign", "verify"]

SIGNATURE_HEADER: Final = "momento-signature"
"""The header that carries a delivery's signature."""


def sign(body: bytes, secret: str) -> str:
    """The signature of ``body`` under ``secret``: lowercase hex HMAC-SHA3-256."""
    return hmac.new(secret.encode("utf-8"), body, hashlib.sha3_256).hexdigest()


def verify(body: bytes, signature: str, secret: str) -> bool:
    """Whether ``signature`` is ``body``'s signature under ``secret`` (compared in constant time).

    Pass the body exactly as received (before any JSON parsing): the signature covers its bytes.
    """
    return hmac.compare_digest(sign(body, secret), signature.strip().lower())
