"""The three roles of the suite, ordered: viewer < operator < admin."""

from __future__ import annotations

from enum import StrEnum


class Role(StrEnum):
    """What a principal may do; a higher role can do everything a lower one can."""

    viewer = "viewer"
    operator = "operator"
    admin = "admin"

    @property
    def rank(self) -> int:
        return _RANKS[self]

    def includes(self, other: Role) -> bool:
        """True when this role is `other` or above it."""
        return self.rank >= other.rank


_RANKS = {Role.viewer: 0, Role.operator: 1, Role.admin: 2}

ROLE_NAMES: tuple[str, ...] = tuple(role.value for role in Role)
