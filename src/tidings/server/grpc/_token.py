"""``token.Token/GenerateDisposableToken``: super-users mint restricted, expiring tokens."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Final

import grpc
import grpc.aio
from momento_wire_types import token_pb2 as pb

from tidings.server.auth import Authenticator
from tidings.server.core import PermissionDenied, TopicsService
from tidings.server.grpc._auth import credential_of, grants_from_permissions
from tidings.server.grpc._context import CallContext
from tidings.server.grpc._status import guarded, parse_request

SERVICE: Final = "token.Token"


class TokenServicer:
    """Mints disposable tokens; the caller's key may come in metadata or in ``auth_token`` (Node SDK)."""

    def __init__(
        self, service: TopicsService, authenticator: Authenticator, public_endpoint: Callable[[], str]
    ) -> None:
        self.stats = service.stats_for("grpc")
        self._authenticator = authenticator
        self._public_endpoint = public_endpoint

    @guarded
    async def generate_disposable_token(self, data: bytes, context: CallContext) -> bytes:
        """Mint a token with the requested permissions, expiry (at most an hour) and token id."""
        request = parse_request(pb._GenerateDisposableTokenRequest, data)
        caller = self._authenticator.authenticate(credential_of(context) or request.auth_token or None)
        if not caller.super_user:
            raise PermissionDenied("minting tokens needs a super-user key")
        grants = grants_from_permissions(request.permissions)
        token, valid_until = self._authenticator.signer.mint(
            grants, request.expires.valid_for_seconds, request.token_id, minted_by=caller.key_id
        )
        return pb._GenerateDisposableTokenResponse(
            api_key=token, endpoint=self._public_endpoint(), valid_until=valid_until
        ).SerializeToString()

    def handlers(self) -> dict[str, grpc.RpcMethodHandler[Any, Any]]:
        """The method handlers to register under `SERVICE`."""
        return {"GenerateDisposableToken": grpc.unary_unary_rpc_method_handler(self.generate_disposable_token)}
