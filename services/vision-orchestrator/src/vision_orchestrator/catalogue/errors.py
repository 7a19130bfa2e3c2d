"""Errors of the inspection-type catalogue, as the API answers them."""

from __future__ import annotations

from collections.abc import Iterable

from mirante.web.errors import ConflictError, NotFoundError, ValidationFailedError


class InspectionTypeNotFoundError(NotFoundError):
    def __init__(self, name: str) -> None:
        super().__init__(f"no inspection type {name!r}", code="inspection_type_not_found")


class InspectionTypeExistsError(ConflictError):
    def __init__(self, name: str) -> None:
        super().__init__(f"inspection type {name!r} exists already", code="inspection_type_exists")


class InspectionTypeInUseError(ConflictError):
    def __init__(self, name: str, machines: int, inspections: int) -> None:
        super().__init__(
            f"inspection type {name!r} is in use by {machines} machines and {inspections} inspections",
            code="inspection_type_in_use",
            details={"machines": machines, "inspections": inspections},
        )


class UnknownInspectionTypesError(ValidationFailedError):
    """Types a request names that the catalogue does not have; `field` is where the request named them."""

    def __init__(self, field: str, names: Iterable[str]) -> None:
        unknown = sorted(set(names))
        super().__init__(
            f"unknown inspection types: {', '.join(unknown)} (add them to /api/v1/inspection-types/ first)",
            code="unknown_inspection_type",
            details=[{"field": field, "message": f"unknown inspection type {name!r}"} for name in unknown],
        )
