"""What an uploaded attachment is, read from its bytes: only an allow-list of types is taken.

The type comes from the magic bytes, never from the file name or the declared content type, so a renamed
executable is refused whatever it is called. Text has no magic: it is taken when the bytes are valid UTF-8 with
no control characters other than tab, line feed, carriage return and form feed (an executable or archive always
has some), and it is served as `text/plain`, never as anything a browser would run.
"""

from __future__ import annotations

from typing import Final

_SIGNATURES: Final = (
    (b"\x89PNG\r\n\x1a\n", "image/png", "png"),
    (b"\xff\xd8\xff", "image/jpeg", "jpg"),
    (b"GIF87a", "image/gif", "gif"),
    (b"GIF89a", "image/gif", "gif"),
    (b"%PDF-", "application/pdf", "pdf"),
)
_ALLOWED_CONTROLS: Final = frozenset(b"\t\n\r\x0c")

TEXT: Final = ("text/plain; charset=utf-8", "txt")

ATTACHMENT_CONTENT_TYPES: Final = (
    *dict.fromkeys(content_type for _, content_type, _ in _SIGNATURES),
    "image/webp",
    TEXT[0],
)
"""Every type an attachment is stored and served as."""


def sniff(data: bytes) -> tuple[str, str] | None:
    """`(content type, file extension)` of an accepted attachment, or None when the type is not accepted."""
    for magic, content_type, extension in _SIGNATURES:
        if data.startswith(magic):
            return content_type, extension
    if len(data) >= 12 and data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "image/webp", "webp"
    if data and _is_plain_text(data):
        return TEXT
    return None


def _is_plain_text(data: bytes) -> bool:
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return not any((ord(char) < 32 and ord(char) not in _ALLOWED_CONTROLS) or ord(char) == 127 for char in text)
