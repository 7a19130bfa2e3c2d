"""The inspection-type catalogue: the types machines declare and inspections ask for, managed by admins."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import DateTime, String, Text, func
from sqlalchemy.orm import Mapped, mapped_column

from vision_orchestrator.db import Base
from vision_orchestrator.identifiers import TYPE_NAME_LENGTH

SEEDED_TYPES: dict[str, str] = {
    "blob_detection": "Finds connected regions (blobs) and reports their count, position and size.",
    "edge_detection": "Finds edges and contours in the image.",
    "color_filter": "Keeps the pixels within a colour range, e.g. to find a missing or wrong-coloured part.",
}
"""The types of the API contract; the first migration inserts them."""

BUILTIN_TOOL_TYPES: frozenset[str] = frozenset({"image_source"})
"""Pipeline tools every machine has besides the catalogue's types: where the image comes from."""


class InspectionType(Base):
    __tablename__ = "inspection_types"

    name: Mapped[str] = mapped_column(String(TYPE_NAME_LENGTH), primary_key=True)
    description: Mapped[str] = mapped_column(Text, server_default="")
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
