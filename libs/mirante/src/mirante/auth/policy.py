"""Who may manage which identities: the rules the user and API-key administration applies to its caller.

- Reach: staff principals and principals without a tenant act on every tenant; a tenant-bound principal sees
  and manages only the users and keys of its own tenant (others answer 404, as if they did not exist).
- Staff: only staff may grant staff or change a staff account (its password, role, tenant or state).
- Grants never exceed the caller: no role above its own, and an API key cannot give a new key scopes it
  does not hold itself.

Services apply the same reach to their own data: what belongs to no tenant (the vision fleet, the CVAT job
mirror) is out of reach of a tenant-bound principal (`check_suite_access`).
"""

from __future__ import annotations

from collections.abc import Iterable

from mirante.auth.apikeys import WILDCARD_SCOPE
from mirante.auth.principal import Principal, check_role, check_scope
from mirante.auth.roles import Role
from mirante.web.errors import ForbiddenError

IDENTITY_ADMIN_SCOPE = "identity:admin"
"""The scope an API key needs (besides the admin role) to manage users and keys; `*` includes it."""


def tenant_reach(actor: Principal) -> str | None:
    """The one tenant `actor` is confined to, or None when it reaches every tenant."""
    if actor.is_staff:
        return None
    return actor.tenant


def can_see(actor: Principal, tenant: str | None) -> bool:
    """True when an identity of `tenant` (None: suite-wide) is within `actor`'s reach."""
    reach = tenant_reach(actor)
    return reach is None or reach == tenant


def check_suite_access(actor: Principal, role: Role, scope: str, what: str) -> Principal:
    """`actor` when it may act with `role` on `what`, data of the whole suite that belongs to no tenant; 403
    naming what it lacks otherwise.

    Like a suite-wide identity, such data is out of reach of a tenant-bound principal whatever its role (staff
    reach it); an API key also needs `scope` (or `*`).
    """
    if not can_see(actor, None):
        raise ForbiddenError(f"{what} belongs to no tenant; an account of tenant {actor.tenant!r} cannot reach it")
    check_scope(actor, scope)
    check_role(actor, role)
    return actor


def tenant_for_new(actor: Principal, requested: str | None, given: bool) -> str | None:
    """The tenant a new or changed identity gets: a bound actor's own when not given; 403 outside its reach."""
    reach = tenant_reach(actor)
    if reach is None:
        return requested
    if not given:
        return reach
    if requested != reach:
        raise ForbiddenError(f"your account manages only tenant {reach!r}")
    return requested


def check_role_grant(actor: Principal, role: Role) -> None:
    """403 when `role` is above the actor's own."""
    if not actor.has_role(role):
        raise ForbiddenError(f"you cannot grant the {role.value} role (you have {actor.role.value})")


def check_staff_grant(actor: Principal, is_staff: bool) -> None:
    """403 when a non-staff actor tries to make someone staff."""
    if is_staff and not actor.is_staff:
        raise ForbiddenError("only staff can grant staff rights")


def check_staff_account(actor: Principal, target_is_staff: bool) -> None:
    """403 when a non-staff actor tries to change a staff account."""
    if target_is_staff and not actor.is_staff:
        raise ForbiddenError("only staff can change a staff account")


def check_scope_grant(actor: Principal, scopes: Iterable[str]) -> None:
    """403 when an API-key actor grants scopes it does not hold (users are governed by role, not scopes)."""
    if actor.is_user or WILDCARD_SCOPE in actor.scopes:
        return
    missing = sorted(set(scopes) - actor.scopes)
    if missing:
        raise ForbiddenError(f"you cannot grant scopes you do not hold: {', '.join(missing)}")
