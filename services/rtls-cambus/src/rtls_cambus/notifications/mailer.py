"""One mail, built and handed to the suite's mail server with aiosmtplib (`MIRANTE_SMTP_*`).

`security`: `starttls` upgrades the plain connection and fails when the server does not offer STARTTLS, rather
than sending in clear; `tls` speaks TLS from the first byte; `none` is for a local relay or the dev sink.
"""

from __future__ import annotations

import email.utils
from email.message import EmailMessage
from typing import Final

import aiosmtplib

from mirante.settings import SmtpSettings
from rtls_cambus.notifications.rendering import RenderedMail

MAX_ERROR_CHARS: Final = 1000


class SendError(Exception):
    """The mail did not go out; `final` when sending the same mail again cannot help (the server refused it)."""

    def __init__(self, message: str, *, final: bool) -> None:
        super().__init__(message[:MAX_ERROR_CHARS])
        self.final = final


def build_message(sender: str, recipient_name: str, address: str, mail: RenderedMail) -> EmailMessage:
    message = EmailMessage()
    message["From"] = sender
    message["To"] = email.utils.formataddr((recipient_name, address))
    message["Subject"] = mail.subject
    message["Date"] = email.utils.formatdate(usegmt=True)
    domain = email.utils.parseaddr(sender)[1].rpartition("@")[2] or "localhost"
    message["Message-ID"] = email.utils.make_msgid(domain=domain)
    # Tells auto-responders (out-of-office replies) not to answer.
    message["Auto-Submitted"] = "auto-generated"
    message.set_content(mail.text)
    message.add_alternative(mail.html, subtype="html")
    return message


async def send(smtp: SmtpSettings, message: EmailMessage) -> None:
    """Send `message`; `SendError` when it did not go out."""
    try:
        await aiosmtplib.send(
            message,
            hostname=smtp.host,
            port=smtp.effective_port,
            username=smtp.username or None,
            password=smtp.password.get_secret_value() if smtp.password is not None else None,
            use_tls=smtp.security == "tls",
            start_tls=smtp.security == "starttls",
            timeout=smtp.timeout_seconds,
            validate_certs=smtp.validate_certs,
        )
    except aiosmtplib.SMTPRecipientsRefused as error:
        # Every recipient refused: 5xx is the server's last word about these addresses, 4xx a passing state.
        final = all(refusal.code >= 500 for refusal in error.recipients)
        raise SendError(f"recipients refused: {error}", final=final) from None
    except aiosmtplib.SMTPDataError as error:
        raise SendError(f"message refused: {error.code} {error.message}", final=error.code >= 500) from None
    except (aiosmtplib.SMTPException, OSError) as error:
        # Connection, TLS, authentication or a 4xx: the server or its settings may be back to normal later.
        raise SendError(f"{type(error).__name__}: {error}", final=False) from None
