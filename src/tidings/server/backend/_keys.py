"""The authenticator a backend's server uses, and the loop that keeps its API keys current from the store."""

from __future__ import annotations

import asyncio
import logging
import time

from tidings.server.auth import ADMIN_KEY_ENV, Authenticator, AuthPolicy, TokenSigner, load_or_create_admin_key
from tidings.server.backend._seam import Backend, RefreshLog
from tidings.server.config import Settings
from tidings.server.core import TopicsService
from tidings.server.store import DataDirectoryError

logger = logging.getLogger("tidings.server")


async def open_authenticator(backend: Backend, settings: Settings) -> Authenticator:
    """The authenticator: the backend's signing secret, the admin key settled (and said where it is), the API
    keys loaded. A signing secret or admin key file that cannot be used is a `DataDirectoryError`."""
    try:
        return await _open_authenticator(backend, settings)
    except OSError as error:  # the signing secret or admin key file
        raise DataDirectoryError.caused_by(settings.data_dir, error) from None


async def _open_authenticator(backend: Backend, settings: Settings) -> Authenticator:
    signer = TokenSigner(await backend.signing_secret())
    admin_key = await load_or_create_admin_key(settings.data_dir, backend.store)
    if admin_key.path is not None:
        logger.info("admin key (super-user) is in %s", admin_key.path)
    elif admin_key.configured is not None:
        only = "; no other admin key is valid" if admin_key.exclusive else ""
        logger.info("admin key (super-user) is %s%s", ADMIN_KEY_ENV, only)
    # else: the deployment's key is another server's, and load_or_create_admin_key logged where it is
    authenticator = Authenticator(
        signer,
        AuthPolicy(allow_anonymous=settings.anonymous_allowed),
        admin_key=admin_key.configured,
    )
    await authenticator.refresh(backend.store)
    return authenticator


async def watch_keys(
    backend: Backend, authenticator: Authenticator, service: TopicsService, interval: float, log: RefreshLog
) -> None:
    """Pick up API keys created or revoked and tokens revoked by other processes (the CLI), and end the
    streams of expired tokens, every ``interval`` seconds, until cancelled."""
    while True:
        await asyncio.sleep(interval)
        service.expire_subscriptions(time.time())
        try:
            revoked = await authenticator.refresh(backend.store)
        except Exception as error:
            log.failed(error, "keys")
            continue
        log.succeeded("keys")
        for key_id in revoked.key_ids:
            ended = service.revoke_key(key_id)
            logger.info("API key %s revoked (with the tokens it minted); ended %d subscriptions", key_id, ended)
        for token_id, minted_until in revoked.token_ids.items():
            ended = service.revoke_token(token_id, minted_until)
            logger.info("token id %r revoked; ended %d subscriptions", token_id, ended)
