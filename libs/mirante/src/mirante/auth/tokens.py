"""Access tokens: JWTs signed with the one algorithm pinned for the deployment (python-jose).

python-jose accepts whatever `alg` a token names unless told otherwise and requires no claim by default, so
the codec pins the algorithm twice (a check of the unverified header, then `algorithms=[pinned]`), hands jose
a key object built for that algorithm (an RS256 public key can never act as an HMAC secret), requires `exp`,
`iat`, `iss`, `aud`, `sub` and `jti`, and turns every failure into `InvalidTokenError` with the reason.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, NamedTuple

from jose import jwk, jwt
from jose.backends.base import Key
from jose.exceptions import ExpiredSignatureError, JOSEError, JWSError

from mirante.auth.roles import Role
from mirante.settings import JwtSettings, SettingsError
from mirante.web.errors import ApiError, UnauthorizedError

MAX_TOKEN_LENGTH = 8192
REQUIRED_CLAIMS = ("exp", "iat", "iss", "aud", "sub", "jti")
TOKEN_TYPE = "bearer"
MAX_USER_ID = 2**63 - 1  # bigint
TOKEN_VERSION_CLAIM = "ver"


class InvalidTokenError(UnauthorizedError):
    """The token cannot be trusted; `reason` says why (expired, wrong audience, bad signature, ...)."""

    code = "invalid_token"

    def __init__(self, reason: str) -> None:
        self.reason = reason
        description = reason.replace('"', "'")
        challenge = f'Bearer realm="mirante", error="invalid_token", error_description="{description}"'
        super().__init__(f"invalid token: {reason}", headers={"WWW-Authenticate": challenge})


class TokenConfigurationError(SettingsError):
    """The JWT settings or key files cannot be used."""


class TokenSigningUnavailableError(ApiError):
    """This process holds only the public key, so it can verify tokens but not issue them."""

    status_code, code = 503, "token_signing_unavailable"


class IssuedToken(NamedTuple):
    token: str
    expires_in: int


@dataclass(frozen=True)
class TokenClaims:
    """The verified content of an access token."""

    subject: str
    username: str
    role: Role
    staff: bool
    tenant: str | None
    token_id: str
    issued_at: datetime
    expires_at: datetime
    token_version: int = 0
    """The user's token version at issue; tokens from before the version was introduced count as 0."""

    @property
    def user_id(self) -> int:
        """The user id the subject names; `InvalidTokenError` when it is not one."""
        if not self.subject.isascii() or not self.subject.isdigit() or len(self.subject) > 19:
            raise InvalidTokenError("subject is not a user id")
        user_id = int(self.subject)
        if not 0 < user_id <= MAX_USER_ID:
            raise InvalidTokenError("subject is not a user id")
        return user_id


def _read_key_file(path: Path, variable: str) -> str:
    try:
        return path.read_text(encoding="utf-8")
    except OSError as exc:
        raise TokenConfigurationError(f"cannot read {variable} ({path}): {exc.strerror or exc}") from exc


def _construct(material: str, algorithm: str, what: str) -> Key:
    try:
        return jwk.construct(material, algorithm)
    except JOSEError as exc:
        raise TokenConfigurationError(f"{what} is not usable for {algorithm}: {exc}") from exc
    except (ValueError, TypeError) as exc:
        raise TokenConfigurationError(f"{what} is not a valid {algorithm} key") from exc


def _is_public(key: Key) -> bool:
    return bool(getattr(key, "is_public", lambda: False)())


def _rsa_keys(settings: JwtSettings) -> tuple[Key | None, Key]:
    if settings.public_key_file is None:
        raise TokenConfigurationError("RS256 needs MIRANTE_JWT_PUBLIC_KEY_FILE")
    public_pem = _read_key_file(settings.public_key_file, "MIRANTE_JWT_PUBLIC_KEY_FILE")
    verifying = _construct(public_pem, "RS256", "MIRANTE_JWT_PUBLIC_KEY_FILE")
    if not _is_public(verifying):
        raise TokenConfigurationError("MIRANTE_JWT_PUBLIC_KEY_FILE holds a private key; give it the public key")
    if settings.private_key_file is None:
        return None, verifying
    private_pem = _read_key_file(settings.private_key_file, "MIRANTE_JWT_PRIVATE_KEY_FILE")
    signing = _construct(private_pem, "RS256", "MIRANTE_JWT_PRIVATE_KEY_FILE")
    if _is_public(signing):
        raise TokenConfigurationError("MIRANTE_JWT_PRIVATE_KEY_FILE holds a public key, not a private one")
    if signing.public_key().to_dict().get("n") != verifying.to_dict().get("n"):
        raise TokenConfigurationError("the JWT private and public key files are not one key pair")
    return signing, verifying


def _number(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value)


class TokenCodec:
    """Issues and verifies the suite's access tokens with one pinned algorithm and key."""

    def __init__(
        self,
        *,
        algorithm: str,
        signing_key: Key | None,
        verifying_key: Key,
        key_id: str,
        issuer: str,
        audience: str,
        ttl_seconds: int,
        leeway_seconds: int = 0,
    ) -> None:
        if algorithm not in ("HS256", "RS256"):
            raise TokenConfigurationError(f"unsupported JWT algorithm {algorithm!r}; use HS256 or RS256")
        self.algorithm = algorithm
        self.key_id = key_id
        self.issuer = issuer
        self.audience = audience
        self.ttl_seconds = ttl_seconds
        self.leeway_seconds = leeway_seconds
        self._signing_key = signing_key
        self._verifying_key = verifying_key
        self._options: dict[str, Any] = {
            "verify_signature": True,
            **{f"verify_{name}": True for name in ("aud", "iat", "exp", "nbf", "iss", "sub", "jti")},
            **{f"require_{name}": True for name in REQUIRED_CLAIMS},
            "leeway": leeway_seconds,
        }

    @classmethod
    def from_settings(cls, settings: JwtSettings) -> TokenCodec:
        """A codec for `settings`: HS256 with the secret, or RS256 with key files (private key optional)."""
        signing: Key | None
        if settings.algorithm == "HS256":
            signing = verifying = _construct(settings.secret.get_secret_value(), "HS256", "MIRANTE_JWT_SECRET")
        else:
            signing, verifying = _rsa_keys(settings)
        return cls(
            algorithm=settings.algorithm,
            signing_key=signing,
            verifying_key=verifying,
            key_id=settings.key_id,
            issuer=settings.issuer,
            audience=settings.audience,
            ttl_seconds=settings.access_token_ttl_seconds,
            leeway_seconds=settings.leeway_seconds,
        )

    @property
    def can_issue(self) -> bool:
        return self._signing_key is not None

    def issue(
        self,
        subject: str | int,
        *,
        username: str,
        role: Role | str,
        staff: bool = False,
        tenant: str | None = None,
        ttl_seconds: int | None = None,
        token_version: int = 0,
    ) -> IssuedToken:
        """Sign a token for `subject` (a user id) carrying the user's name, role, staff flag, tenant and token
        version (the token stops working once the user's version moves past it)."""
        if self._signing_key is None:
            raise TokenSigningUnavailableError(
                "this service has no MIRANTE_JWT_PRIVATE_KEY_FILE, so it cannot issue tokens"
            )
        ttl = self.ttl_seconds if ttl_seconds is None else ttl_seconds
        if ttl <= 0:
            raise ValueError("ttl_seconds must be positive")
        now = int(datetime.now(UTC).timestamp())
        claims: dict[str, Any] = {
            "sub": str(subject),
            "iat": now,
            "exp": now + ttl,
            "iss": self.issuer,
            "aud": self.audience,
            "jti": secrets.token_urlsafe(16),
            "username": username,
            "role": Role(role).value,
            "staff": staff,
            "tenant": tenant,
            TOKEN_VERSION_CLAIM: token_version,
        }
        token = jwt.encode(claims, self._signing_key, algorithm=self.algorithm, headers={"kid": self.key_id})
        return IssuedToken(token, ttl)

    def decode(self, token: str) -> TokenClaims:
        """Verify `token` and return its claims; `InvalidTokenError` (never a jose error) when it fails."""
        if not isinstance(token, str) or not token or len(token) > MAX_TOKEN_LENGTH:
            raise InvalidTokenError("malformed token")
        self._check_header(token)
        try:
            payload = jwt.decode(
                token,
                self._verifying_key,
                algorithms=[self.algorithm],
                audience=self.audience,
                issuer=self.issuer,
                options=self._options,
            )
        except ExpiredSignatureError:
            raise InvalidTokenError("token has expired") from None
        except JOSEError as exc:
            raise InvalidTokenError(self._diagnose(token, exc)) from None
        except Exception:
            # jose lets some type errors of hostile claims escape (e.g. `int(None)` on `exp`).
            raise InvalidTokenError("malformed token") from None
        return self._claims(payload)

    def _check_header(self, token: str) -> None:
        try:
            header = jwt.get_unverified_header(token)
        except JOSEError:
            raise InvalidTokenError("malformed token") from None
        algorithm = header.get("alg")
        if algorithm != self.algorithm:
            shown = algorithm[:20] if isinstance(algorithm, str) else None
            raise InvalidTokenError(f"algorithm {shown!r} not allowed")
        if "kid" in header and header["kid"] != self.key_id:
            raise InvalidTokenError("unknown key id")
        if "crit" in header:
            raise InvalidTokenError("unsupported critical header")

    def _diagnose(self, token: str, error: JOSEError) -> str:
        cause = error.args[0] if error.args else None
        if isinstance(cause, JWSError):
            return "bad signature" if "Signature verification failed" in str(cause) else "malformed token"
        # The signature verified, so the unverified claims are the signed ones: say which rule they break.
        try:
            claims = jwt.get_unverified_claims(token)
        except JOSEError:
            return "malformed token"
        missing = [name for name in REQUIRED_CLAIMS if name not in claims]
        if missing:
            return f'missing claim "{missing[0]}"'
        audience = claims["aud"]
        audiences = [audience] if isinstance(audience, str) else audience
        if not isinstance(audiences, list) or self.audience not in audiences:
            return "wrong audience"
        if claims["iss"] != self.issuer:
            return "wrong issuer"
        return f"invalid claims ({error})"

    def _claims(self, payload: dict[str, Any]) -> TokenClaims:
        issued_at, expires_at = _number(payload.get("iat")), _number(payload.get("exp"))
        now = datetime.now(UTC).timestamp()
        if issued_at is None or expires_at is None:
            raise InvalidTokenError('claims "iat" and "exp" must be numbers')
        if issued_at > now + self.leeway_seconds:
            raise InvalidTokenError("token issued in the future")
        subject, token_id = payload.get("sub"), payload.get("jti")
        username, staff, tenant = payload.get("username"), payload.get("staff", False), payload.get("tenant")
        if not isinstance(subject, str) or not subject or not isinstance(token_id, str):
            raise InvalidTokenError('claims "sub" and "jti" must be strings')
        if not isinstance(username, str) or not isinstance(staff, bool):
            raise InvalidTokenError('claims "username" and "staff" are missing or malformed')
        if tenant is not None and not isinstance(tenant, str):
            raise InvalidTokenError('claim "tenant" must be a string')
        token_version = payload.get(TOKEN_VERSION_CLAIM, 0)
        if isinstance(token_version, bool) or not isinstance(token_version, int) or token_version < 0:
            raise InvalidTokenError(f'claim "{TOKEN_VERSION_CLAIM}" must be a non-negative integer')
        try:
            role = Role(str(payload.get("role")))
        except ValueError:
            raise InvalidTokenError('claim "role" is not a known role') from None
        return TokenClaims(
            subject=subject,
            username=username,
            role=role,
            staff=staff,
            tenant=tenant,
            token_id=token_id,
            issued_at=datetime.fromtimestamp(issued_at, UTC),
            expires_at=datetime.fromtimestamp(expires_at, UTC),
            token_version=token_version,
        )
