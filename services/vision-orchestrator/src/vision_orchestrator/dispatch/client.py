"""The orchestrator's calls to a machine's own HTTP API (docs/vision-machines.md): give it an inspection, tell it
to cancel or drop one. Every failure is an answer (`Delivery`), never an exception, so a machine that is slow,
resets the connection or answers garbage costs one short timeout and nothing else.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

import httpx
import orjson

from mirante.backoff import retry_after_seconds
from mirante.webhooks.signatures import sign_standard

MAX_REASON_LENGTH = 500


class Answer(StrEnum):
    accepted = "accepted"
    """202 or 200: the machine has it (a re-send answers 200 `duplicate`)."""
    busy = "busy"
    """503 `at_capacity`: try later or elsewhere."""
    refused = "refused"
    """another answer: this machine will not take it as sent."""
    unreachable = "unreachable"
    """no answer: refused or reset connection, timeout."""
    gone = "gone"
    """404 to a cancel: the machine does not hold it, which is what a drop wants."""


@dataclass(frozen=True)
class Delivery:
    answer: Answer
    reason: str | None = None
    retry_after: float | None = None
    status_code: int | None = None
    machine_status: str | None = None
    """For a cancel: the inspection's status the machine reported (`cancelled`, `completed`, `failed`)."""

    @property
    def ok(self) -> bool:
        return self.answer in (Answer.accepted, Answer.gone)


def base_url(ip_address: str, port: int) -> str:
    host = str(ip_address).split("/", 1)[0]
    if ipaddress.ip_address(host).version == 6:
        host = f"[{host}]"
    return f"http://{host}:{port}"


def _error_of(response: httpx.Response) -> tuple[str | None, str]:
    """The envelope's code and message, or a description of a body that is not one."""
    try:
        document = orjson.loads(response.content)
        error = document["error"]
        code, message = error.get("code"), error.get("message")
        if isinstance(code, str):
            return code, f"{code}: {message}" if isinstance(message, str) else code
    except (orjson.JSONDecodeError, KeyError, TypeError, AttributeError):
        pass
    return None, f"HTTP {response.status_code} without an error envelope"


def _clip(text: str) -> str:
    return text if len(text) <= MAX_REASON_LENGTH else text[: MAX_REASON_LENGTH - 1] + "…"


class MachineClient:
    """One pooled HTTP client for every machine, with short connect and read timeouts."""

    def __init__(
        self,
        *,
        connect_timeout: float,
        read_timeout: float,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        timeout = httpx.Timeout(read_timeout, connect=connect_timeout, pool=connect_timeout)
        self._http = httpx.AsyncClient(
            timeout=timeout,
            transport=transport,
            limits=httpx.Limits(max_connections=500, max_keepalive_connections=100),
            follow_redirects=False,
            trust_env=False,
        )

    async def aclose(self) -> None:
        await self._http.aclose()

    async def _post(self, secret: str | None, url: str, document: dict[str, Any]) -> httpx.Response | Delivery:
        """POST `document`, signed (Standard Webhooks over the raw body) with the machine's `webhook_secret`
        when the orchestrator holds one; unsigned otherwise, which a machine accepts unless it requires
        signatures."""
        body = orjson.dumps(document)
        headers = {"Content-Type": "application/json"}
        if secret is not None:
            headers |= sign_standard(secret, body)
        try:
            return await self._http.post(url, content=body, headers=headers)
        except httpx.TimeoutException as error:
            return Delivery(Answer.unreachable, _clip(f"no answer from {url} in time ({type(error).__name__})"))
        except httpx.HTTPError as error:
            return Delivery(Answer.unreachable, _clip(f"cannot reach {url}: {type(error).__name__} {error}"))

    async def send(self, url: str, secret: str | None, order: dict[str, Any]) -> Delivery:
        """Give the machine at `url` an inspection (`order` is the contract's body)."""
        response = await self._post(secret, f"{url}/api/v1/inspections/", order)
        if isinstance(response, Delivery):
            return response
        if response.status_code in (200, 202):
            try:
                view = orjson.loads(response.content)
                accepted = isinstance(view, dict) and view.get("inspection_id") == order["inspection_id"]
            except orjson.JSONDecodeError:
                accepted = False
            if accepted:
                return Delivery(Answer.accepted, status_code=response.status_code)
            return Delivery(
                Answer.refused,
                f"HTTP {response.status_code} but the body is not the machine's view of the inspection",
                status_code=response.status_code,
            )
        _code, message = _error_of(response)
        if response.status_code == 503:
            return Delivery(
                Answer.busy,
                _clip(f"machine busy ({message})"),
                retry_after=retry_after_seconds(response.headers.get("retry-after")),
                status_code=503,
            )
        if response.status_code >= 500 or response.status_code in (408, 425, 429):
            return Delivery(
                Answer.unreachable,
                _clip(f"machine cannot take it now: {message}"),
                retry_after=retry_after_seconds(response.headers.get("retry-after")),
                status_code=response.status_code,
            )
        return Delivery(Answer.refused, _clip(f"machine refused it: {message}"), status_code=response.status_code)

    async def cancel(self, url: str, secret: str | None, inspection_id: str, reason: str) -> Delivery:
        """Tell the machine at `url` to cancel or drop an inspection; `gone` when it does not hold it."""
        response = await self._post(secret, f"{url}/api/v1/inspections/{inspection_id}/cancel/", {"reason": reason})
        if isinstance(response, Delivery):
            return response
        if response.status_code == 404:
            return Delivery(Answer.gone, status_code=404, machine_status="unknown")
        if response.status_code == 200:
            try:
                view = orjson.loads(response.content)
                status = view.get("status") if isinstance(view, dict) else None
            except orjson.JSONDecodeError:
                status = None
            if isinstance(status, str):
                return Delivery(Answer.accepted, status_code=200, machine_status=status[:32])
            return Delivery(Answer.refused, "HTTP 200 without the inspection's status", status_code=200)
        _, message = _error_of(response)
        if response.status_code >= 500 or response.status_code in (408, 425, 429):
            return Delivery(Answer.unreachable, _clip(message), status_code=response.status_code)
        return Delivery(Answer.refused, _clip(message), status_code=response.status_code)
