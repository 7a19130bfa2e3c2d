"""What a request answers when an id in its body names another record.

One rule across rtls-cambus: an id that names nothing is a 404 with that record's `<thing>_not_found` code, as
the same id in a path would be, and `details.field` names the body field. A record that exists but cannot be
used that way (a floor without a plan, an inactive user, a zone of another floor) is a 409. A 422 stays for
values that are wrong in themselves, whatever is stored.
"""

from __future__ import annotations

from collections.abc import Awaitable
from typing import TypeVar

from mirante.web.errors import NotFoundError

T = TypeVar("T")


async def referenced(lookup: Awaitable[T], field: str) -> T:
    """What `lookup` finds; when it finds nothing, its 404 also names `field`, the body field that gave the id."""
    try:
        return await lookup
    except NotFoundError as missing:
        raise NotFoundError(missing.message, code=missing.code, details={"field": field}) from None
