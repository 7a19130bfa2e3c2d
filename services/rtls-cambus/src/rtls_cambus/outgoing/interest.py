"""The event types enabled webhook subscriptions name: the dispatcher's consumer skips every other event before
any statement (`mirante.bus.TypeInterest` states what that guarantees)."""

from __future__ import annotations

from fastapi import FastAPI

from mirante.bus import TypeInterest
from rtls_cambus.config import Settings
from rtls_cambus.outgoing import repository


def install_webhook_interest(app: FastAPI) -> None:
    """One per app, shared by the subscriptions API (which bumps it) and the dispatcher's consumer."""
    settings: Settings = app.state.settings
    app.state.webhook_interest = TypeInterest(
        app.state.sessionmaker,
        repository.subscribed_event_types,
        max_age=settings.event_interest_refresh_seconds,
    )
