"""The mail sink of `mirante up`: a real SMTP server on 127.0.0.1 that keeps every mail as a file and logs it."""

from __future__ import annotations

import logging
import smtplib
import socket
from email.message import EmailMessage
from pathlib import Path

import pytest

from mirante.devstack.mail_sink import MailSink, start_mail_sink
from mirante.supervisor import _mail_line


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _send(port: int, subject: str) -> None:
    message = EmailMessage()
    message["From"] = "mirante@localhost"
    message["To"] = "ana@example.com, bruno@example.com"
    message["Subject"] = subject
    message.set_content("plain part")
    message.add_alternative("<p>html part</p>", subtype="html")
    with smtplib.SMTP("127.0.0.1", port, timeout=10) as client:
        client.send_message(message)


def test_every_mail_is_kept_as_a_file_and_logged(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    sink = MailSink(tmp_path, _free_port())
    sink.start()
    try:
        with caplog.at_level(logging.INFO, logger="mirante.devstack.mail_sink"):
            _send(sink.port, "Alerta: zona restrita")
            _send(sink.port, "second")
    finally:
        sink.stop()
    files = sorted((tmp_path / "mail").glob("*.eml"))
    assert len(files) == 2
    first = files[0].read_text()
    assert "Subject: =?utf-8?q?Alerta=3A_zona_restrita?=" in first or "Alerta: zona restrita" in first
    assert "plain part" in first and "<p>html part</p>" in first
    lines = [record.getMessage() for record in caplog.records if "mail sink: from" in record.getMessage()]
    assert len(lines) == 2
    assert "ana@example.com, bruno@example.com" in lines[0] and "'Alerta: zona restrita'" in lines[0]
    assert str(files[0]) in lines[0]


def test_a_taken_port_leaves_the_suite_without_a_sink(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        with caplog.at_level(logging.WARNING):
            assert start_mail_sink(tmp_path, taken.getsockname()[1]) is None
    assert "mail is not delivered anywhere" in caplog.text
    assert "did not start" in _mail_line(None)


def test_services_are_pointed_at_the_sink(tmp_path: Path) -> None:
    sink = MailSink(tmp_path, 25025)
    assert sink.child_env() == {
        "MIRANTE_SMTP_HOST": "127.0.0.1",
        "MIRANTE_SMTP_PORT": "25025",
        "MIRANTE_SMTP_SECURITY": "none",
    }
    assert "smtp://127.0.0.1:25025" in _mail_line(sink)
