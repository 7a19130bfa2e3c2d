"""The local mail sink of `mirante up`: an SMTP server on 127.0.0.1 that delivers nothing and keeps everything.

Each mail it receives is written to `<data_dir>/mail/<UTC time>-<number>.eml` (open it with any mail client, or
read it as text) and announced with one log line naming the sender, the recipients, the subject and the file.
It runs when no mail server is configured (`MIRANTE_SMTP_HOST` unset), on `MIRANTE_SMTP_SINK_PORT` (18025),
speaking plain SMTP: the services started by `mirante up` are pointed at it. It is aiosmtpd, from the package's
`embedded` extra, serving from a thread of the supervising process.
"""

from __future__ import annotations

import email.parser
import email.policy
import logging
import threading
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from mirante.devstack.errors import StackError

logger = logging.getLogger(__name__)

SINK_HOST = "127.0.0.1"
MAIL_FOLDER = "mail"


class _KeepEveryMail:
    """aiosmtpd handler: accepts any envelope and writes the message to a file of its own."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self._lock = threading.Lock()
        self._count = 0

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:  # noqa: N802 (aiosmtpd's name)
        content: bytes = envelope.original_content or envelope.content or b""
        with self._lock:
            self._count += 1
            number = self._count
        stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S.%fZ")
        path = self.directory / f"{stamp}-{number:05d}.eml"
        path.write_bytes(content)
        headers = email.parser.BytesHeaderParser(policy=email.policy.default).parsebytes(content)
        logger.info(
            "mail sink: from %s to %s: %r (saved as %s)",
            envelope.mail_from,
            ", ".join(envelope.rcpt_tos),
            str(headers.get("subject", "")),
            path,
        )
        return "250 Message accepted for delivery"


class MailSink:
    """The sink on `SINK_HOST:port`, keeping mails under `<data_dir>/mail/`; `start()` and `stop()` block briefly."""

    def __init__(self, data_dir: Path, port: int) -> None:
        self.directory = Path(data_dir).expanduser().resolve() / MAIL_FOLDER
        self.port = port
        self._controller: Any = None

    @property
    def host(self) -> str:
        return SINK_HOST

    def start(self) -> None:
        """Listen, or raise `StackError` (aiosmtpd not installed, port taken)."""
        try:
            from aiosmtpd.controller import Controller
        except ImportError as exc:
            raise StackError("the mail sink needs aiosmtpd: install mirante[embedded]") from exc
        self.directory.mkdir(parents=True, exist_ok=True)
        controller = Controller(_KeepEveryMail(self.directory), hostname=SINK_HOST, port=self.port)
        try:
            controller.start()
        except (OSError, TimeoutError, RuntimeError) as exc:
            controller.stop(no_assert=True)
            raise StackError(f"the mail sink could not listen on {SINK_HOST}:{self.port}: {exc}") from exc
        self._controller = controller
        logger.info("mail sink on smtp://%s:%d keeps every mail in %s", SINK_HOST, self.port, self.directory)

    def stop(self) -> None:
        controller, self._controller = self._controller, None
        if controller is not None:
            controller.stop()

    def child_env(self) -> dict[str, str]:
        """The variables that point a service at the sink."""
        return {"MIRANTE_SMTP_HOST": SINK_HOST, "MIRANTE_SMTP_PORT": str(self.port), "MIRANTE_SMTP_SECURITY": "none"}


def start_mail_sink(data_dir: Path, port: int) -> MailSink | None:
    """The sink, started; None (with a warning) when it cannot run, since mail is not needed to try the suite."""
    sink = MailSink(data_dir, port)
    try:
        sink.start()
    except StackError as exc:
        logger.warning("%s; mail is not delivered anywhere (set MIRANTE_SMTP_SINK_PORT to another port)", exc)
        return None
    return sink
