"""Answers of the Chatwoot webhook endpoint and of its log."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from fastapi import Path
from pydantic import BaseModel, ConfigDict, Field

from mirante.types import Id64

DeliveryLogId = Annotated[Id64, Path(description="id of the webhook log row")]
DeliveryStatus = Literal["queued", "processed", "ignored", "duplicate", "rejected"]


class WebhookReceipt(BaseModel):
    status: DeliveryStatus = Field(description="queued, ignored or duplicate")
    log_id: int
    message: str


class DeliveryRead(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: int
    delivery_id: str | None = Field(description="X-Chatwoot-Delivery")
    event: str | None
    status: DeliveryStatus
    http_status: int = Field(description="what the request was answered")
    authenticated_by: Literal["signature", "token"] | None
    body_size: int
    body_truncated: bool = Field(description="only the start of an unauthenticated body is kept")
    body_sha256: str
    source_ip: str | None
    note: str | None = Field(description="why it was refused or ignored, or what it became")
    incident_id: int | None
    received_at: datetime
    processed_at: datetime | None


class DeliveryDetail(DeliveryRead):
    body: str
    headers: dict[str, Any]
