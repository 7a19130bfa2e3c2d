"""Access tokens: round trip, every forged or broken token refused (by the codec and with 401 over HTTP)."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import pytest_asyncio
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from jose import jwt
from redis.asyncio import Redis
from sqlalchemy.ext.asyncio import AsyncSession

from mirante.auth.commands import create_user
from mirante.auth.passwords import PasswordHasher, ScryptParameters, set_password_hasher
from mirante.auth.roles import Role
from mirante.auth.tokens import (
    InvalidTokenError,
    TokenCodec,
    TokenConfigurationError,
    TokenSigningUnavailableError,
)
from mirante.settings import InfraSettings, JwtSettings
from mirante.testing.apps import library_app
from mirante.testing.plugin import ClientFactory

SECRET = "a-test-secret-that-is-long-enough-0123456789"
OTHER_SECRET = "another-secret-that-is-also-long-enough-987654"
SETTINGS = JwtSettings(secret=SECRET, issuer="mirante", audience="mirante", key_id="k1", leeway_seconds=30)


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _segment(value: dict[str, Any]) -> str:
    return _b64(json.dumps(value, separators=(",", ":")).encode())


def forge_hmac(header: dict[str, Any], claims: dict[str, Any], key: bytes, digest: Any = hashlib.sha256) -> str:
    """A JWT put together by hand, so nothing in a library can refuse to make a bad one."""
    signing_input = f"{_segment(header)}.{_segment(claims)}"
    signature = hmac.new(key, signing_input.encode("ascii"), digest).digest()
    return f"{signing_input}.{_b64(signature)}"


def valid_claims(subject: int | str = 1, **changes: Any) -> dict[str, Any]:
    now = int(time.time())
    claims: dict[str, Any] = {
        "sub": str(subject),
        "iat": now,
        "exp": now + 300,
        "iss": "mirante",
        "aud": "mirante",
        "jti": uuid.uuid4().hex,
        "username": "someone",
        "role": "admin",
        "staff": False,
        "tenant": None,
    }
    claims.update(changes)
    return claims


def without(claims: dict[str, Any], name: str) -> dict[str, Any]:
    return {key: value for key, value in claims.items() if key != name}


HS256_HEADER = {"alg": "HS256", "typ": "JWT", "kid": "k1"}


@pytest.fixture(scope="module")
def rsa_pems() -> tuple[bytes, bytes]:
    """(private PEM, public PEM) of a fresh 2048-bit RSA key."""
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    private = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    public = key.public_key().public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    return private, public


@pytest.fixture
def rsa_files(tmp_path: Path, rsa_pems: tuple[bytes, bytes]) -> tuple[Path, Path]:
    private_file, public_file = tmp_path / "jwt.key", tmp_path / "jwt.pub"
    private_file.write_bytes(rsa_pems[0])
    public_file.write_bytes(rsa_pems[1])
    return private_file, public_file


def rejection(codec: TokenCodec, token: str) -> str:
    with pytest.raises(InvalidTokenError) as caught:
        codec.decode(token)
    assert caught.value.status_code == 401
    return caught.value.reason


# --- HS256 round trip ---


def test_issue_and_decode_round_trip() -> None:
    codec = TokenCodec.from_settings(SETTINGS)

    token, expires_in = codec.issue(42, username="ana", role=Role.operator, staff=True, tenant="acme")
    claims = codec.decode(token)

    assert expires_in == SETTINGS.access_token_ttl_seconds
    assert (claims.subject, claims.user_id, claims.username) == ("42", 42, "ana")
    assert (claims.role, claims.staff, claims.tenant) == (Role.operator, True, "acme")
    assert claims.expires_at.timestamp() - claims.issued_at.timestamp() == expires_in
    assert jwt.get_unverified_header(token) == {"alg": "HS256", "typ": "JWT", "kid": "k1"}
    raw = jwt.get_unverified_claims(token)
    assert {"sub", "iat", "exp", "iss", "aud", "jti"} <= raw.keys()
    assert codec.decode(codec.issue(42, username="ana", role="viewer").token).token_id != claims.token_id


def test_the_token_version_travels_in_the_token() -> None:
    codec = TokenCodec.from_settings(SETTINGS)

    versioned = codec.decode(codec.issue(42, username="ana", role="viewer", token_version=7).token)
    older = codec.decode(_hs256(without(valid_claims(), "ver")))

    assert (versioned.token_version, older.token_version) == (7, 0)


def test_expiry_within_the_configured_leeway_is_accepted() -> None:
    codec = TokenCodec.from_settings(SETTINGS)
    now = int(time.time())
    token = forge_hmac(HS256_HEADER, valid_claims(iat=now - 600, exp=now - 10), SECRET.encode())

    assert codec.decode(token).username == "someone"
    assert rejection(codec, forge_hmac(HS256_HEADER, valid_claims(exp=now - 60), SECRET.encode())) == (
        "token has expired"
    )


# --- every way a token can be wrong ---


def _hs256(claims: dict[str, Any], header: dict[str, Any] | None = None) -> str:
    return forge_hmac(header or HS256_HEADER, claims, SECRET.encode())


def _none_token() -> str:
    return f"{_segment({'alg': 'none', 'typ': 'JWT'})}.{_segment(valid_claims())}."


def _tampered_token() -> str:
    header, _, signature = _hs256(valid_claims(role="viewer")).split(".")
    return f"{header}.{_segment(valid_claims(role='admin'))}.{signature}"


def _rsa_signed(private_pem: bytes) -> str:
    return jwt.encode(valid_claims(), private_pem.decode(), algorithm="RS256", headers={"kid": "k1"})


BAD_TOKENS: dict[str, tuple[Callable[[tuple[bytes, bytes]], str], str]] = {
    "alg none": (lambda pems: _none_token(), "algorithm 'none' not allowed"),
    "alg missing": (lambda pems: _hs256(valid_claims(), {"typ": "JWT"}), "algorithm None not allowed"),
    "HS512 with the right secret": (
        lambda pems: forge_hmac({"alg": "HS512", "typ": "JWT"}, valid_claims(), SECRET.encode(), hashlib.sha512),
        "algorithm 'HS512' not allowed",
    ),
    "RS256 while HS256 is pinned": (lambda pems: _rsa_signed(pems[0]), "algorithm 'RS256' not allowed"),
    "signed with another secret": (
        lambda pems: forge_hmac(HS256_HEADER, valid_claims(), OTHER_SECRET.encode()),
        "bad signature",
    ),
    "tampered payload": (lambda pems: _tampered_token(), "bad signature"),
    "unknown kid": (lambda pems: _hs256(valid_claims(), {**HS256_HEADER, "kid": "old"}), "unknown key id"),
    "wrong audience": (lambda pems: _hs256(valid_claims(aud="other-service")), "wrong audience"),
    "wrong issuer": (lambda pems: _hs256(valid_claims(iss="someone-else")), "wrong issuer"),
    "expired": (
        lambda pems: _hs256(valid_claims(iat=int(time.time()) - 7200, exp=int(time.time()) - 3600)),
        "token has expired",
    ),
    "missing exp": (lambda pems: _hs256(without(valid_claims(), "exp")), 'missing claim "exp"'),
    "missing iat": (lambda pems: _hs256(without(valid_claims(), "iat")), 'missing claim "iat"'),
    "missing iss": (lambda pems: _hs256(without(valid_claims(), "iss")), 'missing claim "iss"'),
    "missing aud": (lambda pems: _hs256(without(valid_claims(), "aud")), 'missing claim "aud"'),
    "missing sub": (lambda pems: _hs256(without(valid_claims(), "sub")), 'missing claim "sub"'),
    "exp as a string": (
        lambda pems: _hs256(valid_claims(exp="99999999999")),
        'claims "iat" and "exp" must be numbers',
    ),
    "exp as null": (lambda pems: _hs256(valid_claims(exp=None)), "malformed token"),
    "issued in the future": (
        lambda pems: _hs256(valid_claims(iat=int(time.time()) + 3600, exp=int(time.time()) + 7200)),
        "token issued in the future",
    ),
    "unknown role": (lambda pems: _hs256(valid_claims(role="root")), 'claim "role" is not a known role'),
    "token version as a string": (
        lambda pems: _hs256(valid_claims(ver="1")),
        'claim "ver" must be a non-negative integer',
    ),
    "negative token version": (lambda pems: _hs256(valid_claims(ver=-1)), 'claim "ver" must be a non-negative integer'),
    "garbage": (lambda pems: "not a token at all", "malformed token"),
    "empty": (lambda pems: "", "malformed token"),
    "three dots of nothing": (lambda pems: "..", "malformed token"),
    "bad base64": (lambda pems: f"{_segment(HS256_HEADER)}.A.A", "malformed token"),
    "header not an object": (lambda pems: f"{_b64(b'[1]')}.{_segment(valid_claims())}.sig", "malformed token"),
    "huge": (lambda pems: "a" * 10_000, "malformed token"),
}


@pytest.mark.parametrize("case", list(BAD_TOKENS))
def test_codec_refuses_with_the_reason(case: str, rsa_pems: tuple[bytes, bytes]) -> None:
    make, reason = BAD_TOKENS[case]
    codec = TokenCodec.from_settings(SETTINGS)

    assert rejection(codec, make(rsa_pems)) == reason


def test_correctly_signed_payload_that_is_not_an_object_is_malformed() -> None:
    codec = TokenCodec.from_settings(SETTINGS)
    signing_input = f"{_segment(HS256_HEADER)}.{_b64(b'[1, 2]')}"
    signature = hmac.new(SECRET.encode(), signing_input.encode(), hashlib.sha256).digest()

    assert rejection(codec, f"{signing_input}.{_b64(signature)}") == "malformed token"


# --- RS256 ---


def test_rs256_round_trip_and_verify_only_codec(rsa_files: tuple[Path, Path]) -> None:
    private_file, public_file = rsa_files
    signer = TokenCodec.from_settings(
        JwtSettings(algorithm="RS256", private_key_file=private_file, public_key_file=public_file, key_id="k1")
    )
    verifier = TokenCodec.from_settings(JwtSettings(algorithm="RS256", public_key_file=public_file, key_id="k1"))

    token, _ = signer.issue(7, username="rui", role="viewer")

    assert jwt.get_unverified_header(token)["alg"] == "RS256"
    assert verifier.decode(token).user_id == 7
    assert not verifier.can_issue
    with pytest.raises(TokenSigningUnavailableError):
        verifier.issue(7, username="rui", role="viewer")


def test_rs256_refuses_hs256_forged_with_the_public_key(
    rsa_files: tuple[Path, Path], rsa_pems: tuple[bytes, bytes]
) -> None:
    _, public_file = rsa_files
    codec = TokenCodec.from_settings(JwtSettings(algorithm="RS256", public_key_file=public_file, key_id="k1"))
    public_pem = rsa_pems[1]

    forged = forge_hmac({"alg": "HS256", "typ": "JWT", "kid": "k1"}, valid_claims(), public_pem)
    assert rejection(codec, forged) == "algorithm 'HS256' not allowed"
    # Even with the header claiming RS256, an HMAC over the public key is not an RSA signature.
    relabelled = forge_hmac({"alg": "RS256", "typ": "JWT", "kid": "k1"}, valid_claims(), public_pem)
    assert rejection(codec, relabelled) == "bad signature"
    assert rejection(codec, _hs256(valid_claims())) == "algorithm 'HS256' not allowed"


def test_rs256_configuration_errors(tmp_path: Path, rsa_files: tuple[Path, Path]) -> None:
    private_file, public_file = rsa_files
    other = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    other_private = tmp_path / "other.key"
    other_private.write_bytes(
        other.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    garbage = tmp_path / "garbage.pem"
    garbage.write_text("not a key")

    with pytest.raises(TokenConfigurationError, match="cannot read"):
        TokenCodec.from_settings(JwtSettings(algorithm="RS256", public_key_file=tmp_path / "missing.pub"))
    with pytest.raises(TokenConfigurationError, match="not one key pair"):
        TokenCodec.from_settings(
            JwtSettings(algorithm="RS256", private_key_file=other_private, public_key_file=public_file)
        )
    with pytest.raises(TokenConfigurationError, match="holds a private key"):
        TokenCodec.from_settings(JwtSettings(algorithm="RS256", public_key_file=private_file))
    with pytest.raises(TokenConfigurationError):
        TokenCodec.from_settings(JwtSettings(algorithm="RS256", public_key_file=garbage))


def test_hs256_secret_that_is_a_public_key_is_refused(rsa_pems: tuple[bytes, bytes]) -> None:
    with pytest.raises(TokenConfigurationError, match="not usable"):
        TokenCodec.from_settings(JwtSettings(secret=rsa_pems[1].decode()))


# --- over HTTP: every refusal is a 401 with the reason, never a 500 ---


@pytest.fixture(autouse=True)
def cheap_password_hashing() -> Iterator[None]:
    previous = set_password_hasher(PasswordHasher(ScryptParameters(n=2**10, r=8, p=1)))
    yield
    set_password_hasher(previous)


def _with_jwt(infra: InfraSettings, jwt_settings: JwtSettings) -> InfraSettings:
    return infra.model_copy(update={"jwt": jwt_settings})


@pytest_asyncio.fixture
async def hs256_client(infra_settings: InfraSettings, make_client: ClientFactory) -> httpx.AsyncClient:
    return await make_client(library_app(_with_jwt(infra_settings, SETTINGS)))


async def test_http_refuses_each_bad_token_with_401(
    hs256_client: httpx.AsyncClient, db_session: AsyncSession, rsa_pems: tuple[bytes, bytes]
) -> None:
    user = await create_user(db_session, f"tok-{uuid.uuid4().hex[:10]}", "password-123", role="admin")
    good = _hs256(valid_claims(user.id, username=user.username))
    answer = await hs256_client.get("/api/v1/auth/me", headers={"Authorization": f"Bearer {good}"})
    assert answer.status_code == 200, answer.text
    assert answer.json()["id"] == user.id

    for case, (make, reason) in BAD_TOKENS.items():
        token = make(rsa_pems)
        response = await hs256_client.get("/api/v1/auth/me", headers={"Authorization": f"Bearer {token}"})
        assert response.status_code == 401, (case, response.text)
        body = response.json()
        # A value without the three parts of a JWT also says what a bearer value may be.
        assert body["error"]["message"].startswith(f"invalid token: {reason}"), case
        assert response.headers["WWW-Authenticate"].startswith('Bearer realm="mirante", error="invalid_token"')


async def test_token_for_a_deleted_or_unknown_user_is_refused(hs256_client: httpx.AsyncClient) -> None:
    token = _hs256(valid_claims(2**62))
    response = await hs256_client.get("/api/v1/auth/me", headers={"Authorization": f"Bearer {token}"})

    assert response.status_code == 401
    assert response.json()["error"]["message"] == "invalid token: user no longer exists"
    not_an_id = await hs256_client.get(
        "/api/v1/auth/me", headers={"Authorization": f"Bearer {_hs256(valid_claims('alice'))}"}
    )
    assert not_an_id.status_code == 401
    assert not_an_id.json()["error"]["message"] == "invalid token: subject is not a user id"
    for subject in ("9999999999999999999", "0", "-1", "١٢"):
        response = await hs256_client.get(
            "/api/v1/auth/me", headers={"Authorization": f"Bearer {_hs256(valid_claims(subject))}"}
        )
        assert response.status_code == 401, subject
        assert response.json()["error"]["message"] == "invalid token: subject is not a user id", subject


async def test_rs256_app_logs_in_and_refuses_the_public_key_forgery(
    infra_settings: InfraSettings,
    make_client: ClientFactory,
    db_session: AsyncSession,
    rsa_files: tuple[Path, Path],
    rsa_pems: tuple[bytes, bytes],
    redis_client: Redis,
) -> None:
    private_file, public_file = rsa_files
    settings = JwtSettings(algorithm="RS256", private_key_file=private_file, public_key_file=public_file)
    client = await make_client(library_app(_with_jwt(infra_settings, settings)))
    user = await create_user(db_session, f"rsa-{uuid.uuid4().hex[:10]}", "password-123", role="admin")

    credentials = {"username": user.username, "password": "password-123"}
    try:
        login = await client.post("/api/v1/auth/login", json=credentials)
    finally:
        async for key in redis_client.scan_iter(match=f"mirante:ratelimit*{user.username}*"):
            await redis_client.delete(key)
    assert login.status_code == 200, login.text
    token = login.json()["access_token"]
    assert jwt.get_unverified_header(token)["alg"] == "RS256"
    me = await client.get("/api/v1/auth/me", headers={"Authorization": f"Bearer {token}"})
    assert me.json()["name"] == user.username

    forged = forge_hmac({"alg": "HS256", "typ": "JWT", "kid": settings.key_id}, valid_claims(user.id), rsa_pems[1])
    refused = await client.get("/api/v1/auth/me", headers={"Authorization": f"Bearer {forged}"})
    assert refused.status_code == 401
    assert refused.json()["error"]["message"] == "invalid token: algorithm 'HS256' not allowed"
