"""Shapes of `POST /ingest`: the answer with counts and the rejections of single messages and readings."""

from __future__ import annotations

from pydantic import BaseModel, Field


class ReadingCounts(BaseModel):
    """Readings of one request: `received = written + duplicate + rejected`."""

    received: int = Field(description="readings in messages that reached a tenant, accepted or rejected")
    written: int = Field(description="readings stored now")
    duplicate: int = Field(description="readings already stored (same device, sensor and time): nothing changed")
    rejected: int = Field(description="readings refused, each listed in `rejections` (up to its limit)")


class IngestRejection(BaseModel):
    """One refused message (`reading` null) or one refused reading of a message's list."""

    message: int = Field(description="position of the message in the body (0 for a single object)")
    reading: int | None = Field(default=None, description="position of the reading in the message's list")
    topic: str | None = Field(default=None, description="the message's topic (up to 1,024 characters)")
    reason: str
    stored_in: str = Field(
        description="where the rejection was recorded: `rejected_readings` of the tenant, or `unrouted` (messages "
        "naming no tenant, or one the API key may not write)"
    )


class IngestReceipt(BaseModel):
    """What `POST /ingest` did with the body."""

    messages: int = Field(description="messages in the body")
    readings: ReadingCounts
    tenants: dict[str, ReadingCounts] = Field(description="the same counts per tenant slug")
    unrouted: int = Field(description="messages kept in the unrouted list (no such tenant, or not the key's)")
    rejections: list[IngestRejection] = Field(description="refused messages and readings, in body order")
    rejections_truncated: bool = Field(
        description="true when there were more rejections than listed (all are recorded and counted)"
    )
