"""Where the sign-in page may send the browser afterwards: a path on this site, judged as a browser parses it.

Browsers follow the WHATWG URL standard: they trim C0 controls and spaces at both ends, drop tabs, CRs and
LFs anywhere, and read `\\` as `/` in http(s) URLs. So `/\\t/evil.example` and `/\\evil.example` both mean
`//evil.example`, another host. A value is accepted only when, read that way, it starts with one `/` and its
path holds no `//` (which also rules out dot-segment tricks such as `/.//evil.example`). `mirante.js`'s
`safeNext` applies the same rule before it navigates.
"""

from __future__ import annotations

_TRIMMED = "".join(chr(code) for code in range(0x21))  # C0 controls and space
_DROPPED = str.maketrans("", "", "\t\n\r")


def safe_next(value: str | None, fallback: str = "/") -> str:
    """`value` (tabs and newlines removed, as the browser would) when it is a path on this site, else
    `fallback`."""
    if not isinstance(value, str):
        return fallback
    cleaned = value.strip(_TRIMMED).translate(_DROPPED)
    as_browser_reads = cleaned.replace("\\", "/")
    path = as_browser_reads.split("?", 1)[0].split("#", 1)[0]
    if not path.startswith("/") or "//" in path:
        return fallback
    return cleaned
