"""What the catalogue holds from the start, and the tools every machine has."""

from __future__ import annotations

SEEDED_TYPES: dict[str, str] = {
    "blob_detection": "Finds connected regions (blobs) and reports their count, position and size.",
    "edge_detection": "Finds edges and contours in the image.",
    "color_filter": "Keeps the pixels within a colour range, e.g. to find a missing or wrong-coloured part.",
}
"""The types of the API contract; migration 0002 inserts them."""

BUILTIN_TOOL_TYPES: frozenset[str] = frozenset({"image_source"})
"""Pipeline tools every machine has besides the catalogue's types: where the image comes from."""
