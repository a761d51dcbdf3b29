"""Credentials: API keys, signed disposable tokens, and how a request's credential becomes a `Principal`."""

from tidings.server.auth._authenticator import Authenticator, AuthPolicy
from tidings.server.auth._credentials import credential_from_header
from tidings.server.auth._grants import (
    ScopeSyntaxError,
    describe_grant,
    grants_from_json,
    grants_to_json,
    parse_scope,
)
from tidings.server.auth._keys import ApiKey, KeyStore, new_api_key
from tidings.server.auth._secrets import (
    ADMIN_KEY_ENV,
    SECRET_ENV,
    AdminKey,
    load_or_create_admin_key,
    load_or_create_secret,
)
from tidings.server.auth._tokens import MAX_TOKEN_ID_LENGTH, MAX_TOKEN_LIFETIME, TokenSigner

__all__ = [
    "ADMIN_KEY_ENV",
    "MAX_TOKEN_ID_LENGTH",
    "MAX_TOKEN_LIFETIME",
    "SECRET_ENV",
    "AdminKey",
    "ApiKey",
    "AuthPolicy",
    "Authenticator",
    "KeyStore",
    "ScopeSyntaxError",
    "TokenSigner",
    "credential_from_header",
    "describe_grant",
    "grants_from_json",
    "grants_to_json",
    "load_or_create_admin_key",
    "load_or_create_secret",
    "new_api_key",
    "parse_scope",
]
