"""Password hashing with the standard library's scrypt, in a self-describing string.

A stored hash reads `scrypt$<n>$<r>$<p>$<salt>$<hash>` (salt and hash in unpadded url-safe base64), so the
cost can be raised later: `needs_rehash` tells when a stored hash was made with other parameters, and the
login path rehashes it with the password it has just verified.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import hashlib
import hmac
import logging
import secrets
import unicodedata
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from functools import cached_property
from typing import TypeVar

from mirante.web.overload import ServiceBusyError

logger = logging.getLogger(__name__)
Result = TypeVar("Result")

SCHEME = "scrypt"
MIN_PASSWORD_LENGTH = 8
MAX_PASSWORD_LENGTH = 1024
SALT_BYTES = 16
HASH_BYTES = 32
# Bounds on parameters read back from storage, so a tampered row cannot make verification eat the server.
MAX_N = 2**20
MAX_R = 32
MAX_P = 16


class InvalidPasswordError(ValueError):
    """The password is empty, too long, or not text."""


def _b64encode(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode("ascii")


def _b64decode(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _password_bytes(password: str) -> bytes:
    if not isinstance(password, str):
        raise InvalidPasswordError("password must be a string")
    if not password:
        raise InvalidPasswordError("password must not be empty")
    if len(password) > MAX_PASSWORD_LENGTH:
        raise InvalidPasswordError(f"password must be at most {MAX_PASSWORD_LENGTH} characters")
    # NFKC so the same password typed on different keyboards or input methods hashes the same way.
    return unicodedata.normalize("NFKC", password).encode("utf-8")


@dataclass(frozen=True)
class ScryptParameters:
    """scrypt cost: `n` (CPU/memory, a power of two), `r` (block size), `p` (parallelism)."""

    # OWASP's scrypt row "N=2^15, r=8, p=3": 32 MiB and about the CPU work of N=2^17 with p=1.
    n: int = 2**15
    r: int = 8
    p: int = 3

    def __post_init__(self) -> None:
        if not (2 <= self.n <= MAX_N) or self.n & (self.n - 1):
            raise ValueError(f"scrypt n must be a power of two between 2 and {MAX_N}")
        if not (1 <= self.r <= MAX_R):
            raise ValueError(f"scrypt r must be between 1 and {MAX_R}")
        if not (1 <= self.p <= MAX_P):
            raise ValueError(f"scrypt p must be between 1 and {MAX_P}")

    @property
    def max_memory(self) -> int:
        """The `maxmem` OpenSSL needs (128·r·n bytes plus headroom)."""
        return 128 * self.r * self.n * 2 + 1024 * 1024


@dataclass(frozen=True)
class _ParsedHash:
    parameters: ScryptParameters
    salt: bytes
    digest: bytes


def _parse(encoded: str) -> _ParsedHash | None:
    parts = encoded.split("$") if isinstance(encoded, str) else []
    if len(parts) != 6 or parts[0] != SCHEME:
        return None
    try:
        parameters = ScryptParameters(n=int(parts[1]), r=int(parts[2]), p=int(parts[3]))
        salt, digest = _b64decode(parts[4]), _b64decode(parts[5])
    except (ValueError, binascii.Error):
        return None
    if not salt or not digest:
        return None
    return _ParsedHash(parameters, salt, digest)


def _derive(password: bytes, salt: bytes, parameters: ScryptParameters, length: int) -> bytes:
    return hashlib.scrypt(
        password,
        salt=salt,
        n=parameters.n,
        r=parameters.r,
        p=parameters.p,
        maxmem=parameters.max_memory,
        dklen=length,
    )


class PasswordHasher:
    """Hashes and verifies passwords with one set of scrypt parameters."""

    def __init__(self, parameters: ScryptParameters | None = None) -> None:
        self.parameters = parameters or ScryptParameters()

    def hash(self, password: str) -> str:
        """The storable hash of `password`; raises `InvalidPasswordError` for empty or over-long input."""
        salt = secrets.token_bytes(SALT_BYTES)
        digest = _derive(_password_bytes(password), salt, self.parameters, HASH_BYTES)
        p = self.parameters
        return f"{SCHEME}${p.n}${p.r}${p.p}${_b64encode(salt)}${_b64encode(digest)}"

    def verify(self, password: str, encoded: str) -> bool:
        """True when `password` matches `encoded` (constant-time compare); False for an unreadable hash."""
        candidate = _password_bytes(password)
        parsed = _parse(encoded)
        if parsed is None:
            logger.warning("stored password hash is not in the scrypt format; refusing it")
            self.burn(password)
            return False
        derived = _derive(candidate, parsed.salt, parsed.parameters, len(parsed.digest))
        return hmac.compare_digest(derived, parsed.digest)

    def needs_rehash(self, encoded: str) -> bool:
        """True when `encoded` was not made with this hasher's parameters (or cannot be read)."""
        parsed = _parse(encoded)
        return parsed is None or parsed.parameters != self.parameters or len(parsed.digest) != HASH_BYTES

    @cached_property
    def _dummy_hash(self) -> str:
        return self.hash(secrets.token_urlsafe(16))

    def burn(self, password: str) -> None:
        """Spend the time of one verification, so an unknown user answers as slowly as a wrong password."""
        self.verify(password, self._dummy_hash)


_hasher = PasswordHasher()


def get_password_hasher() -> PasswordHasher:
    """The hasher used by the module-level functions."""
    return _hasher


def set_password_hasher(hasher: PasswordHasher) -> PasswordHasher:
    """Replace the module-level hasher (e.g. a cheaper cost in tests); returns the previous one."""
    global _hasher
    previous, _hasher = _hasher, hasher
    return previous


def hash_password(password: str) -> str:
    """Hash `password` with the current hasher."""
    return _hasher.hash(password)


def verify_password(password: str, encoded: str) -> bool:
    """Check `password` against a stored hash in constant time."""
    return _hasher.verify(password, encoded)


def needs_rehash(encoded: str) -> bool:
    """True when a stored hash should be replaced by one made with the current parameters."""
    return _hasher.needs_rehash(encoded)


class PasswordWorkGate:
    """Bounds the scrypt work of a process: `concurrency` hashes at once, at most `queue` callers waiting.

    Each hash takes a core and 32 MiB for a good fraction of a second, so a burst of logins must not start them
    all at once (every login would take the burst's total time, and memory would balloon); a caller that would
    wait behind a full queue is refused at once with 503 and `Retry-After` instead.
    """

    def __init__(self, concurrency: int = 2, queue: int = 32) -> None:
        self.configure(concurrency, queue)

    def configure(self, concurrency: int, queue: int) -> None:
        """Set the bounds; the semaphore is made again, lazily, inside the running loop."""
        if concurrency < 1 or queue < 0:
            raise ValueError("concurrency must be at least 1 and queue at least 0")
        self.concurrency = concurrency
        self.queue = queue
        self._semaphore: asyncio.Semaphore | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._waiting = 0

    @property
    def waiting(self) -> int:
        """How many callers wait for a slot now."""
        return self._waiting

    def _current_semaphore(self) -> asyncio.Semaphore:
        loop = asyncio.get_running_loop()
        if self._semaphore is None or self._loop is not loop:
            self._semaphore, self._loop, self._waiting = asyncio.Semaphore(self.concurrency), loop, 0
        return self._semaphore

    @asynccontextmanager
    async def slot(self) -> AsyncIterator[None]:
        """Hold one of the slots; `ServiceBusyError` when every slot is taken and the queue is full."""
        semaphore = self._current_semaphore()
        if semaphore.locked():
            if self._waiting >= self.queue:
                raise ServiceBusyError("too many sign-ins at once; retry in a moment")
            self._waiting += 1
            try:
                await semaphore.acquire()
            finally:
                self._waiting -= 1
        else:
            await semaphore.acquire()
        try:
            yield
        finally:
            semaphore.release()

    async def run(self, work: Callable[..., Result], *args: str) -> Result:
        """`work(*args)` on a worker thread, inside a slot."""
        async with self.slot():
            return await asyncio.to_thread(work, *args)


password_work = PasswordWorkGate()
"""The process-wide gate every `*_async` function below passes through (set up by the app's settings)."""


async def hash_password_async(password: str) -> str:
    """`hash_password` on a worker thread: scrypt is deliberately slow and must not block the event loop."""
    return await password_work.run(_hasher.hash, password)


async def verify_password_async(password: str, encoded: str) -> bool:
    """`verify_password` on a worker thread."""
    return await password_work.run(_hasher.verify, password, encoded)


async def burn_password_time_async(password: str) -> None:
    """Spend one verification's time on a worker thread (for unknown users)."""
    await password_work.run(_hasher.burn, password)
