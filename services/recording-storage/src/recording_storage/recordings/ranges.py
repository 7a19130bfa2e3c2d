"""HTTP Range for one file (RFC 9110 section 14): a single `bytes=` range, or the whole file.

Several ranges in one request are answered with the whole file (a server may ignore Range), as is a header that
is not a byte range; a range wholly past the end is 416.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Final

from recording_storage.recordings.errors import RangeNotSatisfiableError

_BYTE_RANGE: Final = re.compile(r"bytes=(\d{0,19})-(\d{0,19})")


@dataclass(frozen=True)
class ByteRange:
    start: int
    end: int
    """Exclusive."""
    partial: bool

    @property
    def length(self) -> int:
        return self.end - self.start


def byte_range(header: str | None, size: int) -> ByteRange:
    """The part of a `size`-byte file a `Range` header asks for; `RangeNotSatisfiableError` when none of it exists."""
    whole = ByteRange(0, size, partial=False)
    if header is None:
        return whole
    match = _BYTE_RANGE.fullmatch(header.strip().replace(" ", ""))
    if match is None:
        return whole
    first, last = match.groups()
    if not first and not last:
        return whole
    if not first:
        suffix = int(last)
        if suffix == 0:
            raise RangeNotSatisfiableError(size)
        return ByteRange(max(0, size - suffix), size, partial=True)
    start = int(first)
    end = size if not last else min(int(last) + 1, size)
    if last and int(last) < start:
        return whole
    if start >= size:
        raise RangeNotSatisfiableError(size)
    return ByteRange(start, end, partial=True)
