"""`{count, next, previous, results}` pages with `page` and a capped `page_size`."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, Generic, TypeVar

from fastapi import Depends, Query, Request
from pydantic import BaseModel

T = TypeVar("T")

DEFAULT_PAGE_SIZE = 50
MAX_PAGE_SIZE = 200


class Page(BaseModel, Generic[T]):
    count: int
    next: str | None
    previous: str | None
    results: list[T]


@dataclass(frozen=True)
class PageParams:
    page: int
    page_size: int
    request: Request

    @property
    def offset(self) -> int:
        return (self.page - 1) * self.page_size

    @property
    def limit(self) -> int:
        return self.page_size

    def _link(self, page: int) -> str:
        return str(self.request.url.include_query_params(page=page, page_size=self.page_size))

    def build(self, results: list[T], count: int) -> Page[T]:
        """The page for `results` out of `count` matching rows."""
        has_next = self.offset + len(results) < count
        return Page[T](
            count=count,
            next=self._link(self.page + 1) if has_next else None,
            previous=self._link(self.page - 1) if self.page > 1 else None,
            results=results,
        )


async def page_params(
    request: Request,
    page: Annotated[int, Query(ge=1, le=1_000_000, description="1-based page number")] = 1,
    page_size: Annotated[int | None, Query(ge=1, description="items per page (capped)")] = None,
) -> PageParams:
    core = getattr(request.app.state, "core_settings", None)
    default = core.default_page_size if core else DEFAULT_PAGE_SIZE
    cap = core.max_page_size if core else MAX_PAGE_SIZE
    # Capped like DRF's max_page_size: a client asking for too much gets the most it may have.
    size = min(default if page_size is None else page_size, cap)
    return PageParams(page=page, page_size=size, request=request)


Pagination = Annotated[PageParams, Depends(page_params)]
