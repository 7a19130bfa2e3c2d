"""amqtt plugins through which the embedded broker asks the suite who may connect and what each client may do.

Opt-in (`MIRANTE_EMBEDDED_MQTT_AUTH`, see `mqtt_broker.py`). The plugins speak mosquitto-go-auth's HTTP protocol,
which telemetry-ingest serves under `/api/v1/mqtt/go-auth`, so devices are checked against the credentials the
suite issued them, exactly as a production Mosquitto with go-auth would check them:

- `<url>/user` on CONNECT, with `{"username", "password", "clientid"}`;
- `<url>/acl` on each publish (`acc` 2), subscribe (4) and delivery (1), with `{"username", "clientid", "topic",
  "acc"}`;
- any 2xx grants, anything else (a refusal, an error, no answer) refuses. The broker secret travels as the HTTP
  Basic password, as go-auth sends it.

The suite's own account (its services and the stack's readiness probe) is checked here, against the password the
stack generated, so the broker admits it whether or not telemetry-ingest is running yet.
"""

from __future__ import annotations

import hmac
import logging
from dataclasses import dataclass
from typing import Any

import httpx
from amqtt.contexts import Action, BaseContext
from amqtt.plugins.base import BaseAuthPlugin, BaseTopicPlugin
from amqtt.session import Session

logger = logging.getLogger(__name__)

ACCESS = {Action.RECEIVE: 1, Action.PUBLISH: 2, Action.SUBSCRIBE: 4}
"""mosquitto's access codes, as go-auth sends them."""


@dataclass
class HttpAuthConfig:
    """Where to ask (`url`, without `/user` or `/acl`), with which broker secret, and the suite's own account."""

    url: str
    secret: str
    suite_username: str
    suite_password: str
    timeout: float = 5.0


class _SuiteAuth:
    """The HTTP client and the suite account both plugins use."""

    def __init__(self, config: HttpAuthConfig) -> None:
        self.config = config
        self.client = httpx.AsyncClient(
            base_url=config.url.rstrip("/"),
            auth=httpx.BasicAuth("broker", config.secret),
            timeout=config.timeout,
        )

    def is_suite(self, session: Session | None) -> bool:
        if session is None or session.username != self.config.suite_username:
            return False
        password = session.password or ""
        if isinstance(password, bytes):
            password = password.decode("utf-8", "replace")
        return hmac.compare_digest(password.encode(), self.config.suite_password.encode())

    async def granted(self, path: str, body: dict[str, Any]) -> bool:
        try:
            response = await self.client.post(path, json=body)
        except httpx.HTTPError as error:
            logger.warning("broker auth: %s unanswered (%s); refused", path, error)
            return False
        if not response.is_success:
            logger.info("broker auth: %s refused %s (%s)", path, body.get("username"), response.status_code)
        return response.is_success


# amqtt is not type-checked here (an optional extra, imported as Any), hence the ignores on its base classes.
class HttpAuthPlugin(BaseAuthPlugin):  # type: ignore[misc]
    """CONNECT: the suite's account, or what `<url>/user` answers."""

    Config = HttpAuthConfig

    def __init__(self, context: BaseContext) -> None:
        super().__init__(context)
        self.auth = _SuiteAuth(self.config)

    async def authenticate(self, *, session: Session) -> bool | None:
        if self.auth.is_suite(session):
            return True
        if not session.username:
            return False
        password = session.password or ""
        if isinstance(password, bytes):
            password = password.decode("utf-8", "replace")
        body = {"username": session.username, "password": password, "clientid": session.client_id or ""}
        return await self.auth.granted("/user", body)

    async def close(self) -> None:
        await self.auth.client.aclose()


class HttpTopicPlugin(BaseTopicPlugin):  # type: ignore[misc]
    """Publish, subscribe and delivery: anything for the suite's account, else what `<url>/acl` answers."""

    Config = HttpAuthConfig

    def __init__(self, context: BaseContext) -> None:
        super().__init__(context)
        self.auth = _SuiteAuth(self.config)

    async def topic_filtering(
        self, *, session: Session | None = None, topic: str | None = None, action: Action | None = None
    ) -> bool | None:
        if self.auth.is_suite(session):
            return True
        if session is None or topic is None or action is None:
            return False
        body = {
            "username": session.username or "",
            "clientid": session.client_id or "",
            "topic": topic,
            "acc": ACCESS.get(action, 0),
        }
        return await self.auth.granted("/acl", body)

    async def close(self) -> None:
        await self.auth.client.aclose()
