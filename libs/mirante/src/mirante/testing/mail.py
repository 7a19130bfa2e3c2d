"""A mail server for tests: aiosmtpd on 127.0.0.1 (plain SMTP), keeping every mail it accepts.

The fixture `mail_server` (registered by the `mirante` pytest plugin) gives one on a free port, not started, so a
test can start it (`mail_server.start()`) or leave it down for a while; it is stopped after the test. A service
reaches it with `SmtpSettings(host="127.0.0.1", port=mail_server.port, security="none")`. Any recipient whose
address starts with `bounce` is refused (550), as a mailbox that does not exist. aiosmtpd comes with the
library's `embedded` extra; without it the fixture skips the test.
"""

from __future__ import annotations

import email
import email.policy
from collections.abc import Iterator
from dataclasses import dataclass, field
from email.message import EmailMessage
from typing import Any

import pytest

from mirante.testing.network import free_port

MAIL_HOST = "127.0.0.1"


@dataclass
class Caught:
    """A mail the server accepted: its envelope sender and recipients, and the parsed message."""

    sender: str
    recipients: list[str]
    message: EmailMessage

    def part(self, subtype: str) -> str:
        """The text of the `plain` or `html` body."""
        body = self.message.get_body(preferencelist=(subtype,))
        if body is None:
            raise AssertionError(f"the mail has no {subtype} part")
        return str(body.get_content())


@dataclass
class MailServer:
    port: int
    caught: list[Caught] = field(default_factory=list)
    controller: Any = None

    async def handle_RCPT(self, server: Any, session: Any, envelope: Any, address: str, options: Any) -> str:  # noqa: N802 (aiosmtpd's name)
        if address.startswith("bounce"):
            return "550 5.1.1 no such mailbox"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:  # noqa: N802 (aiosmtpd's name)
        message = email.message_from_bytes(envelope.original_content, policy=email.policy.default)
        if not isinstance(message, EmailMessage):
            return "554 5.6.0 unreadable message"
        self.caught.append(Caught(envelope.mail_from, list(envelope.rcpt_tos), message))
        return "250 Message accepted"

    def start(self) -> None:
        from aiosmtpd.controller import Controller

        self.controller = Controller(self, hostname=MAIL_HOST, port=self.port)
        self.controller.start()

    def stop(self) -> None:
        if self.controller is not None:
            self.controller.stop()
            self.controller = None

    def to(self, address: str) -> list[Caught]:
        """The mails that had `address` among their recipients."""
        return [caught for caught in self.caught if address in caught.recipients]


@pytest.fixture
def mail_server() -> Iterator[MailServer]:
    """A mail server on a free port, not started: tests start it (or leave it down)."""
    pytest.importorskip("aiosmtpd", reason="the test mail server is aiosmtpd (mirante[embedded])")
    server = MailServer(free_port())
    try:
        yield server
    finally:
        server.stop()
