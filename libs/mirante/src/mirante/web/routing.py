"""Routes served with and without their trailing slash, documented once.

Django clients send `/machines/` and `/machines/{id}/`; other clients drop the slash. Starlette would answer the
other spelling with a redirect, which many HTTP clients do not follow for a POST (or follow as a GET). A
`SlashRouter` registers each route whose path ends in `/` a second time without it, as a `SlashAliasRoute`: the
same endpoint, the same dependencies, left out of the OpenAPI document, so each operation appears once.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from fastapi import APIRouter
from fastapi.routing import APIRoute


class SlashAliasRoute(APIRoute):
    """The undocumented twin of a route, at its path without the trailing slash."""


def is_slash_alias(route: object) -> bool:
    """Whether `route` only repeats a documented route at its path without the trailing slash."""
    return isinstance(route, SlashAliasRoute)


class SlashRouter(APIRouter):
    """An `APIRouter` whose routes ending in `/` answer without the slash too (no redirect)."""

    def add_api_route(self, path: str, endpoint: Callable[..., Any], **kwargs: Any) -> None:
        super().add_api_route(path, endpoint, **kwargs)
        if path.endswith("/") and self.prefix + path != "/":
            alias = {**kwargs, "include_in_schema": False, "route_class_override": SlashAliasRoute}
            super().add_api_route(path[:-1], endpoint, **alias)
