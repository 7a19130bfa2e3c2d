"""Authentication and authorization for the suite: tokens, passwords, API keys, principals, identity API.

The names below are what services use. The router (`mirante.auth.router`) is mounted by
`mirante.app.build_service_app`; the CLI uses `mirante.auth.commands`.
"""

from mirante.auth.passwords import InvalidPasswordError, hash_password, needs_rehash, verify_password
from mirante.auth.principal import (
    AdminPrincipal,
    CurrentPrincipal,
    OperatorPrincipal,
    Principal,
    StreamingSession,
    get_principal,
    require_role,
    require_scope,
    require_staff,
)
from mirante.auth.roles import Role
from mirante.auth.tokens import InvalidTokenError, IssuedToken, TokenClaims, TokenCodec

__all__ = [
    "AdminPrincipal",
    "CurrentPrincipal",
    "InvalidPasswordError",
    "InvalidTokenError",
    "IssuedToken",
    "OperatorPrincipal",
    "Principal",
    "Role",
    "StreamingSession",
    "TokenClaims",
    "TokenCodec",
    "get_principal",
    "hash_password",
    "needs_rehash",
    "require_role",
    "require_scope",
    "require_staff",
    "verify_password",
]
