"""Who may connect to the broker and what each client may do, whatever broker asks.

Devices log in as `<tenant>:<device_id>` with the secret issued for them (`devices.service.issue_credentials`),
and may only publish, and only to their own sensor topics `tenants/<tenant>/devices/<device_id>/sensors/<type>`:
no wildcard, no other tenant, no other device, no subscription. Superusers (settings `broker_superusers`: the
ingest service itself and other trusted clients) may do everything.

Failed logins are counted per username (`broker_authn_failure_limit`); past the limit every login of that username
is refused without looking at the password, so the endpoint cannot be used to guess secrets quickly.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum
from typing import Final

from limits import parse
from sqlalchemy.ext.asyncio import AsyncSession

from mirante.auth.apikeys import api_key_matches, hash_api_key
from mirante.web.ratelimit import RateLimiter
from telemetry_ingest.config import Settings
from telemetry_ingest.devices import repository
from telemetry_ingest.devices.identity import (
    MAX_USERNAME_LENGTH,
    DeviceLogin,
    is_own_sensor_topic,
    parse_device_username,
)

logger = logging.getLogger(__name__)

FAILURE_LIMIT_KEY: Final = "mqtt-authn-failures"
# Compared against when the username is unknown, so that a miss costs what a wrong password costs.
_NO_SECRET_HASH: Final = hash_api_key("no such device")
BAD_LOGIN: Final = "unknown username or wrong password"


class Access(StrEnum):
    """What a client wants to do with a topic."""

    publish = "publish"
    subscribe = "subscribe"
    read = "read"
    """receive a message on a subscription (mosquitto checks each delivery)"""


@dataclass(frozen=True, slots=True)
class Decision:
    """A broker question answered: allowed or not, why, and who the client is."""

    allowed: bool
    reason: str
    superuser: bool = False
    device: DeviceLogin | None = None


def _deny(reason: str) -> Decision:
    return Decision(allowed=False, reason=reason)


class BrokerAuthService:
    """Answers the broker's questions for one request (its session is the request's)."""

    def __init__(self, session: AsyncSession, settings: Settings, limiter: RateLimiter | None) -> None:
        self.session = session
        self.settings = settings
        self.limiter = limiter
        self.failure_rate = parse(settings.broker_authn_failure_limit)

    def is_superuser(self, username: str) -> bool:
        """Whether `username` is one of the configured superusers (no password involved: the broker asks this of
        clients it has already authenticated)."""
        return username in self.settings.broker_superusers

    async def authenticate(self, username: str, password: str, clientid: str) -> Decision:
        """May this client connect? Superusers by their configured hash, devices by their active credentials."""
        if not username or not password:
            return self._log(username, _deny("username and password are required"))
        if len(username) > MAX_USERNAME_LENGTH:
            return self._log(username, _deny(BAD_LOGIN))
        if not await self._below_failure_limit(username):
            return self._log(username, _deny("too many failed logins for this username; try again later"))
        decision = await self._check_login(username, password, clientid)
        if not decision.allowed and self.limiter is not None:
            await self.limiter.strategy.hit(self.failure_rate, FAILURE_LIMIT_KEY, username)
        return self._log(username, decision)

    async def _below_failure_limit(self, username: str) -> bool:
        if self.limiter is None:
            return True
        return await self.limiter.strategy.test(self.failure_rate, FAILURE_LIMIT_KEY, username)

    async def _check_login(self, username: str, password: str, clientid: str) -> Decision:
        superuser_hash = self.settings.broker_superusers.get(username)
        if superuser_hash is not None:
            if api_key_matches(password, superuser_hash):
                return Decision(allowed=True, reason="superuser", superuser=True)
            return _deny(BAD_LOGIN)
        device = parse_device_username(username)
        credential = await repository.active_credential(self.session, username) if device is not None else None
        matches = api_key_matches(password, credential.secret_hash if credential is not None else _NO_SECRET_HASH)
        if device is None or credential is None or not matches:
            return _deny(BAD_LOGIN)
        if not self._client_id_allowed(clientid, device):
            return _deny(f"client id {clientid!r} is not allowed: use the device id {device.device_id!r}")
        await repository.touch_credential(self.session, credential, datetime.now(UTC))
        return Decision(allowed=True, reason="device", device=device)

    def _client_id_allowed(self, clientid: str, device: DeviceLogin) -> bool:
        if not self.settings.broker_require_clientid_match:
            return True
        # The username is accepted too: device ids are unique only within a tenant, and two clients with one
        # client id take each other's session over.
        return clientid in (device.device_id, device.username)

    async def authorize(self, username: str, clientid: str, topic: str, access: Access | None) -> Decision:
        """May this connected client do `access` on `topic`? Devices: publish to their own sensor topics only."""
        if self.is_superuser(username):
            return self._log(username, Decision(allowed=True, reason="superuser", superuser=True), topic)
        device = parse_device_username(username)
        if device is None:
            return self._log(username, _deny("not a device username"), topic)
        if access is not Access.publish:
            action = access.value if access is not None else "an unknown action"
            return self._log(username, _deny(f"devices may only publish, not {action}"), topic)
        if not is_own_sensor_topic(topic, device):
            return self._log(
                username,
                _deny(f"devices publish only to tenants/{device.tenant}/devices/{device.device_id}/sensors/<type>"),
                topic,
            )
        if not self._client_id_allowed(clientid, device):
            return self._log(username, _deny(f"client id {clientid!r} is not allowed"), topic)
        if not await repository.has_active_credential(self.session, username):
            return self._log(username, _deny("the device has no active credentials"), topic)
        return self._log(username, Decision(allowed=True, reason="own sensor topic", device=device), topic)

    @staticmethod
    def _log(username: str, decision: Decision, topic: str | None = None) -> Decision:
        about = f"{username!r}" if topic is None else f"{username!r} on {topic!r}"
        if decision.allowed:
            logger.debug("broker: %s allowed (%s)", about, decision.reason)
        else:
            logger.info("broker: %s refused (%s)", about, decision.reason)
        return decision


def access_of_emqx(action: str, legacy_access: str) -> Access | None:
    """`publish`/`subscribe` from EMQX's `${action}`, or from the legacy `${access}` (1 subscribe, 2 publish)."""
    if action:
        return {"publish": Access.publish, "subscribe": Access.subscribe}.get(action.lower())
    return {"1": Access.subscribe, "2": Access.publish}.get(legacy_access)


def access_of_mosquitto(acc: int) -> Access | None:
    """The access of a mosquitto ACL check: 1 read (a delivery), 2 write (publish), 4 subscribe."""
    return {1: Access.read, 2: Access.publish, 4: Access.subscribe}.get(acc)
