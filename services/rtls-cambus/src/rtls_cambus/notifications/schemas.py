"""Bodies and answers of the notifications API."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from fastapi import Query
from pydantic import BaseModel, ConfigDict, Field, StrictBool

from mirante.types import Id64

MailStatus = Literal["pending", "sent", "failed"]
MailKind = Literal["alert", "incident"]
UserFilter = Annotated[Id64 | None, Query(description="only those of this user")]


class PreferencesPut(BaseModel):
    model_config = ConfigDict(extra="forbid")

    email_alerts: StrictBool = Field(description="mail me the alerts of the alert mail group I am in")
    email_incidents: StrictBool = Field(description="mail me about incidents I am assigned or whose group I am in")


class PreferencesRead(BaseModel):
    email_alerts: bool
    email_incidents: bool
    email: str | None = Field(description="where the mails go (the identity API's address); null: nowhere")


class MailRead(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: int
    event_id: str
    kind: MailKind
    user_id: int
    address: str
    subject: str
    status: MailStatus
    due_at: datetime = Field(description="held back for a digest, or the next try")
    attempts: int
    last_error: str | None
    mail_id: str | None = Field(description="Message-ID of the mail that carried it")
    in_digest: bool
    created_at: datetime
    sent_at: datetime | None
    context: dict[str, Any]
