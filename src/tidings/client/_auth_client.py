"""`AuthClientAsync`: mint disposable tokens over ``token.Token/GenerateDisposableToken`` with grpc.aio."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, datetime, timedelta
from typing import Final

import grpc.aio
from momento_wire_types import token_pb2 as pb

from tidings.client._errors import error_from, invalid_argument
from tidings.client._responses import GenerateDisposableToken
from tidings.client._scopes import DisposableTokenScope, TopicScope
from tidings.client._unary_client import UnaryClientAsync
from tidings.client._validation import lifetime_problem, token_id_problem

_GENERATE_DISPOSABLE_TOKEN: Final = "/token.Token/GenerateDisposableToken"
_Request = pb._GenerateDisposableTokenRequest


class AuthClientAsync(UnaryClientAsync):
    """Mints disposable tokens (asyncio): short-lived, limited to some topics, for browsers and untrusted services.

    Takes the same connection arguments as `TopicClientAsync`; ``api_key`` must be a super-user key (or the
    client anonymous on a server that serves anonymous callers as super-user). Use it as an async context
    manager, or call `close`.
    """

    async def generate_disposable_token(
        self,
        scope: TopicScope | Iterable[TopicScope],
        expires_in: int | timedelta,
        token_id: str | None = None,
    ) -> GenerateDisposableToken.Success | GenerateDisposableToken.Error:
        """Mint a token allowing ``scope`` (a `TopicScope` or several, such as a `DisposableTokenScope`) for
        ``expires_in`` (seconds or a timedelta, 1 s to 1 h). Subscribers see ``token_id`` (at most 64
        characters) on every value published with the token."""
        try:
            scopes = DisposableTokenScope((scope,) if isinstance(scope, TopicScope) else tuple(scope))
        except (TypeError, ValueError):
            return invalid_argument(
                GenerateDisposableToken.Error, "scope must be a TopicScope or an iterable of TopicScopes"
            )
        problem = (
            ("scope must hold at least one TopicScope" if not scopes else None)
            or lifetime_problem(expires_in)
            or token_id_problem(token_id)
        )
        if problem is not None:
            return invalid_argument(GenerateDisposableToken.Error, problem)
        seconds = int(expires_in.total_seconds() if isinstance(expires_in, timedelta) else expires_in)
        request = _Request(
            expires=_Request.Expires(valid_for_seconds=seconds),
            permissions=scopes.to_permissions(),
            token_id=token_id or "",
        )
        try:
            response = await self._call(_GENERATE_DISPOSABLE_TOKEN, request, pb._GenerateDisposableTokenResponse)
        except grpc.aio.AioRpcError as error:
            return error_from(GenerateDisposableToken.Error, error)
        return GenerateDisposableToken.Success(
            response.api_key, response.endpoint, datetime.fromtimestamp(response.valid_until, UTC), token_id
        )
