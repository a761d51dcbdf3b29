"""Response objects of the webhook calls of `TopicClientAsync` / `TopicClient` (same style as ``_responses``)."""

from __future__ import annotations

from dataclasses import dataclass, field

from tidings.client._errors import ErrorResponse


@dataclass(frozen=True, slots=True)
class WebhookInfo:
    """A webhook as ``list_webhooks`` reports it: the messages of ``topic_name`` are POSTed to ``url``."""

    cache_name: str
    name: str
    topic_name: str
    url: str


class PutWebhook:
    """Responses of ``put_webhook``."""

    @dataclass(frozen=True, slots=True)
    class Success:
        """The webhook was created or replaced; ``secret`` signs its deliveries (unchanged by a replace)."""

        secret: str = field(repr=False)

    @dataclass(frozen=True, slots=True)
    class Error(ErrorResponse):
        """Nothing changed (``INVALID_ARGUMENT`` for a bad name or URL, ``CACHE_NOT_FOUND`` without the cache)."""


class DeleteWebhook:
    """Responses of ``delete_webhook``."""

    @dataclass(frozen=True, slots=True)
    class Success:
        """The webhook is gone (or never existed); its deliveries stopped."""

    @dataclass(frozen=True, slots=True)
    class Error(ErrorResponse):
        """The webhook was not deleted."""


class ListWebhooks:
    """Responses of ``list_webhooks``."""

    @dataclass(frozen=True, slots=True)
    class Success:
        """The cache's webhooks, sorted by name."""

        webhooks: tuple[WebhookInfo, ...]

        @property
        def webhook_names(self) -> list[str]:
            """The names of `webhooks`."""
            return [webhook.name for webhook in self.webhooks]

    @dataclass(frozen=True, slots=True)
    class Error(ErrorResponse):
        """The webhooks could not be listed."""


class GetWebhookSecret:
    """Responses of ``get_webhook_secret``."""

    @dataclass(frozen=True, slots=True)
    class Success:
        """The webhook's current signing secret."""

        cache_name: str
        webhook_name: str
        secret: str = field(repr=False)

    @dataclass(frozen=True, slots=True)
    class Error(ErrorResponse):
        """No secret (``CACHE_NOT_FOUND`` also when the cache has no webhook of that name)."""


class RotateWebhookSecret:
    """Responses of ``rotate_webhook_secret``."""

    @dataclass(frozen=True, slots=True)
    class Success:
        """The new signing secret; deliveries are signed with it from now on, never again with the old one."""

        secret: str = field(repr=False)

    @dataclass(frozen=True, slots=True)
    class Error(ErrorResponse):
        """The secret was not rotated."""
