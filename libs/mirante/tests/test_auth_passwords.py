"""Password hashing: the stored format, verification, rehash detection and refusal of bad input."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import threading
import time
import unicodedata
from collections.abc import Iterator

import pytest

from mirante.auth import passwords
from mirante.auth.passwords import (
    MAX_PASSWORD_LENGTH,
    InvalidPasswordError,
    PasswordHasher,
    ScryptParameters,
    hash_password,
    hash_password_async,
    needs_rehash,
    set_password_hasher,
    verify_password,
    verify_password_async,
)
from mirante.web.overload import ServiceBusyError

CHEAP = ScryptParameters(n=2**10, r=8, p=1)


@pytest.fixture
def cheap() -> PasswordHasher:
    return PasswordHasher(CHEAP)


@pytest.fixture
def cheap_default(cheap: PasswordHasher) -> Iterator[PasswordHasher]:
    previous = set_password_hasher(cheap)
    yield cheap
    set_password_hasher(previous)


@pytest.fixture
def production_default() -> Iterator[None]:
    """The suite's tests run with a cheap hasher (see the plugin); this restores the production one."""
    previous = set_password_hasher(PasswordHasher())
    yield
    set_password_hasher(previous)


@pytest.mark.usefixtures("production_default")
def test_default_parameters_round_trip_and_describe_themselves() -> None:
    encoded = hash_password("correct horse battery staple")

    scheme, n, r, p, salt, digest = encoded.split("$")
    assert (scheme, int(n), int(r), int(p)) == ("scrypt", 2**15, 8, 3)
    assert len(base64.urlsafe_b64decode(salt + "==")) == 16
    assert len(base64.urlsafe_b64decode(digest + "=")) == 32
    assert verify_password("correct horse battery staple", encoded)
    assert not verify_password("correct horse battery stapl", encoded)
    assert not needs_rehash(encoded)


def test_hash_is_scrypt_of_the_password_with_the_stored_salt(cheap: PasswordHasher) -> None:
    encoded = cheap.hash("s3cret-pass")
    _, n, r, p, salt, digest = encoded.split("$")
    expected = hashlib.scrypt(
        b"s3cret-pass", salt=base64.urlsafe_b64decode(salt + "=="), n=int(n), r=int(r), p=int(p), dklen=32
    )

    assert base64.urlsafe_b64decode(digest + "=") == expected
    assert cheap.hash("s3cret-pass") != encoded  # a fresh salt every time


def test_unicode_is_normalized(cheap: PasswordHasher) -> None:
    composed = unicodedata.normalize("NFC", "pãssword-çafé")
    decomposed = unicodedata.normalize("NFD", composed)
    assert composed != decomposed

    assert cheap.verify(decomposed, cheap.hash(composed))


@pytest.mark.parametrize(
    ("password", "message"),
    [
        ("", "must not be empty"),
        ("x" * (MAX_PASSWORD_LENGTH + 1), "at most 1024"),
        (None, "must be a string"),
        (b"bytes-password", "must be a string"),
    ],
)
def test_bad_passwords_raise_a_typed_error(cheap: PasswordHasher, password: object, message: str) -> None:
    with pytest.raises(InvalidPasswordError, match=message):
        cheap.hash(password)  # type: ignore[arg-type]
    with pytest.raises(InvalidPasswordError, match=message):
        cheap.verify(password, cheap.hash("a-valid-password"))  # type: ignore[arg-type]


def test_longest_allowed_password_works(cheap: PasswordHasher) -> None:
    longest = "é" * MAX_PASSWORD_LENGTH

    assert cheap.verify(longest, cheap.hash(longest))


def test_needs_rehash_when_parameters_differ(cheap: PasswordHasher) -> None:
    stronger = PasswordHasher(ScryptParameters(n=2**11, r=8, p=1))
    encoded = cheap.hash("password-one")

    assert not cheap.needs_rehash(encoded)
    assert stronger.needs_rehash(encoded)
    assert stronger.verify("password-one", encoded)  # old hashes keep working until rehashed
    assert cheap.needs_rehash("pbkdf2_sha256$600000$salt$hash")


@pytest.mark.parametrize(
    "stored",
    [
        "",
        "plaintext-password",
        "scrypt$1024$8$1$c2FsdA",
        "scrypt$1000$8$1$c2FsdA$ZGlnZXN0",  # n not a power of two
        "scrypt$1073741824$8$1$c2FsdA$ZGlnZXN0",  # n far too large: must not be attempted
        "scrypt$1024$8$1$$ZGlnZXN0",
        "scrypt$abc$8$1$c2FsdA$ZGlnZXN0",
        "bcrypt$1024$8$1$c2FsdA$ZGlnZXN0",
    ],
)
def test_unreadable_stored_hashes_never_verify(cheap: PasswordHasher, stored: str) -> None:
    started = time.perf_counter()

    assert cheap.verify("anything-at-all", stored) is False
    assert cheap.needs_rehash(stored)
    assert time.perf_counter() - started < 2


def test_tampered_digest_does_not_verify(cheap: PasswordHasher) -> None:
    encoded = cheap.hash("password-two")
    head, digest = encoded.rsplit("$", 1)
    flipped = digest[:-2] + ("A" if digest[-2] != "A" else "B") + digest[-1]

    assert not cheap.verify("password-two", f"{head}${flipped}")


def test_invalid_parameters_are_refused() -> None:
    for bad in ({"n": 1000}, {"n": 1}, {"n": 2**21}, {"r": 0}, {"p": 17}):
        with pytest.raises(ValueError):
            ScryptParameters(**bad)


async def test_async_helpers_use_the_configured_hasher(cheap_default: PasswordHasher) -> None:
    encoded = await hash_password_async("async-password")

    assert encoded.startswith("scrypt$1024$8$1$")
    assert await verify_password_async("async-password", encoded)
    assert not await verify_password_async("wrong-password", encoded)
    assert passwords.get_password_hasher() is cheap_default


# --- the gate bounding scrypt work ---


async def test_the_gate_queues_up_to_its_bound_then_refuses_with_retry_after() -> None:
    gate = passwords.PasswordWorkGate(concurrency=1, queue=1)
    entered: list[str] = []

    async def queued() -> None:
        async with gate.slot():
            entered.append("queued")

    async with gate.slot():
        waiter = asyncio.create_task(queued())
        await asyncio.sleep(0)  # one turn of the loop: the task runs until it waits for the slot
        assert gate.waiting == 1
        with pytest.raises(ServiceBusyError) as refused:
            async with gate.slot():
                entered.append("refused")
        assert entered == []

    await waiter
    assert entered == ["queued"]
    assert (refused.value.status_code, refused.value.headers) == (503, {"Retry-After": "1"})
    assert gate.waiting == 0


async def test_the_gate_runs_work_on_a_thread_within_its_bound() -> None:
    gate = passwords.PasswordWorkGate(concurrency=2, queue=100)
    running = 0
    most = 0
    lock = threading.Lock()

    def work(label: str) -> str:
        nonlocal running, most
        with lock:
            running += 1
            most = max(most, running)
        hashlib.sha256(label.encode()).hexdigest()
        with lock:
            running -= 1
        return label

    results = await asyncio.gather(*(gate.run(work, str(index)) for index in range(50)))

    assert results == [str(index) for index in range(50)]
    assert 1 <= most <= 2


def test_the_gate_refuses_nonsense_bounds() -> None:
    with pytest.raises(ValueError, match="concurrency"):
        passwords.PasswordWorkGate(concurrency=0)
    with pytest.raises(ValueError, match="queue"):
        passwords.PasswordWorkGate(queue=-1)
