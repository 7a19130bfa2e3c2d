"""One HTTP attempt of a delivery: resolve and check the target, connect to the checked address, never follow a
redirect, read at most a short excerpt of the answer, and say what the answer means for the delivery."""

from __future__ import annotations

import time
from dataclasses import dataclass
from enum import StrEnum

import httpx

from rtls_cambus.outgoing.ssrf import TargetPolicy, TargetRefusedError

EXCERPT_BYTES = 1024
USER_AGENT = "mirante-webhooks/1"


class Verdict(StrEnum):
    DELIVERED = "delivered"
    RETRY = "retry"
    FINAL = "final"
    GONE = "gone"


@dataclass(slots=True)  # not frozen: built once per delivery, and a frozen one costs three times as much
class AttemptResult:
    verdict: Verdict
    duration_ms: int
    status_code: int | None = None
    error: str | None = None
    retry_after: str | None = None
    excerpt: str | None = None


def verdict_for(status_code: int) -> Verdict:
    if 200 <= status_code < 300:
        return Verdict.DELIVERED
    if status_code == 410:
        return Verdict.GONE
    if status_code == 429 or status_code >= 500:
        return Verdict.RETRY
    # 3xx (redirects are not followed) and every other 4xx: sending the same request again will not help.
    return Verdict.FINAL


async def send(
    client: httpx.AsyncClient,
    policy: TargetPolicy,
    url: str,
    body: bytes,
    headers: dict[str, str],
    *,
    timeout_seconds: float,
) -> AttemptResult:
    started = time.monotonic()

    def elapsed() -> int:
        return int((time.monotonic() - started) * 1000)

    try:
        target = await policy.resolve(url)
    except TargetRefusedError as error:
        return AttemptResult(Verdict.FINAL, elapsed(), error=f"target refused: {error}")
    request_headers = {
        **headers,
        "Host": target.host_header,
        "Content-Type": "application/json",
        "User-Agent": USER_AGENT,
    }
    try:
        request = client.build_request(
            "POST",
            target.pinned_url,
            content=body,
            headers=request_headers,
            # TLS is checked against the name in the URL, not the address connected to.
            extensions={"sni_hostname": target.host},
            timeout=httpx.Timeout(timeout_seconds),
        )
        response = await client.send(request, stream=True, follow_redirects=False)
        try:
            excerpt = await _excerpt(response)
        finally:
            await response.aclose()
    except httpx.TimeoutException:
        return AttemptResult(Verdict.RETRY, elapsed(), error=f"no answer within {timeout_seconds:g} s")
    except httpx.HTTPError as error:
        return AttemptResult(Verdict.RETRY, elapsed(), error=f"{type(error).__name__}: {error}"[:1000])
    return AttemptResult(
        verdict_for(response.status_code),
        elapsed(),
        status_code=response.status_code,
        retry_after=response.headers.get("Retry-After"),
        excerpt=excerpt,
    )


async def _excerpt(response: httpx.Response) -> str:
    collected = b""
    async for chunk in response.aiter_raw():
        collected += chunk
        if len(collected) >= EXCERPT_BYTES:
            break
    return collected[:EXCERPT_BYTES].decode("utf-8", errors="replace").replace("\x00", "")
