"""Mail bodies from Jinja2 templates (`templates/`): a plain-text part and an HTML part of one notification or
of a digest of several. HTML is autoescaped, so nothing an alert or incident carries (a title, a message) can
add markup; the text part is not escaped, as it is never interpreted."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from functools import cache
from typing import Any, Final, Protocol

from jinja2 import Environment, PackageLoader, StrictUndefined, select_autoescape

from rtls_cambus.notifications.models import ALERT

MAX_SUBJECT_CHARS: Final = 200


class Notification(Protocol):
    kind: str
    subject: str
    context: dict[str, Any]


@dataclass(frozen=True)
class RenderedMail:
    subject: str
    text: str
    html: str


@cache
def environment() -> Environment:
    return Environment(
        loader=PackageLoader("rtls_cambus.notifications", "templates"),
        autoescape=select_autoescape(
            enabled_extensions=("html",), disabled_extensions=("txt",), default_for_string=True, default=True
        ),
        undefined=StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
    )


def digest_subject(notifications: Sequence[Notification]) -> str:
    alerts = sum(1 for item in notifications if item.kind == ALERT)
    others = len(notifications) - alerts
    parts = [f"{alerts} alert{'s' if alerts != 1 else ''}"] if alerts else []
    if others:
        parts.append(f"{others} incident update{'s' if others != 1 else ''}")
    return f"[Mirante] {' and '.join(parts)}"


def render(notifications: Sequence[Notification], recipient: str) -> RenderedMail:
    """One mail telling of `notifications` (one: its own subject; several: a digest)."""
    if not notifications:
        raise ValueError("a mail tells of at least one notification")
    subject = notifications[0].subject if len(notifications) == 1 else digest_subject(notifications)
    items = [{"kind": item.kind, "subject": item.subject, "context": item.context} for item in notifications]
    values = {"recipient": recipient, "items": items, "subject": subject}
    env = environment()
    return RenderedMail(
        subject=subject[:MAX_SUBJECT_CHARS],
        text=env.get_template("mail.txt").render(values),
        html=env.get_template("mail.html").render(values),
    )
