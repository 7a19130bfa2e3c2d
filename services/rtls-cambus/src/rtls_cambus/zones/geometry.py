"""Checks of a zone polygon drawn on a floor plan. Pure functions on pixel coordinates."""

from __future__ import annotations

from collections.abc import Sequence

Point = tuple[float, float]


def _orientation(a: Point, b: Point, c: Point) -> float:
    return (b[0] - a[0]) * (c[1] - a[1]) - (b[1] - a[1]) * (c[0] - a[0])


def _on_segment(a: Point, b: Point, p: Point) -> bool:
    return min(a[0], b[0]) <= p[0] <= max(a[0], b[0]) and min(a[1], b[1]) <= p[1] <= max(a[1], b[1])


def segments_intersect(a: Point, b: Point, c: Point, d: Point) -> bool:
    """Whether the closed segments ab and cd share a point."""
    o1, o2, o3, o4 = _orientation(a, b, c), _orientation(a, b, d), _orientation(c, d, a), _orientation(c, d, b)
    if ((o1 > 0 and o2 < 0) or (o1 < 0 and o2 > 0)) and ((o3 > 0 and o4 < 0) or (o3 < 0 and o4 > 0)):
        return True
    return (
        (o1 == 0 and _on_segment(a, b, c))
        or (o2 == 0 and _on_segment(a, b, d))
        or (o3 == 0 and _on_segment(c, d, a))
        or (o4 == 0 and _on_segment(c, d, b))
    )


def polygon_problem(points: Sequence[Point], width: float, height: float) -> str | None:
    """Why `points` is not a simple polygon inside a `width` x `height` plan, or None when it is one.

    Quadratic in the number of points, which the API caps at a few hundred.
    """
    if len(points) < 3:
        return "a polygon needs at least 3 points"
    for index, (x, y) in enumerate(points):
        if not (0 <= x <= width and 0 <= y <= height):
            return f"point {index} ({x}, {y}) lies outside the {width}x{height} plan"
    count = len(points)
    edges = [(points[i], points[(i + 1) % count]) for i in range(count)]
    for i in range(count):
        if edges[i][0] == edges[i][1]:
            return f"points {i} and {(i + 1) % count} are the same"
        for j in range(i + 1, count):
            if j == i + 1 or (i == 0 and j == count - 1):
                continue  # neighbours share an end by design
            if segments_intersect(*edges[i], *edges[j]):
                return f"edges {i} and {j} cross: the polygon must not intersect itself"
    doubled_area = sum(
        points[i][0] * points[(i + 1) % len(points)][1] - points[(i + 1) % len(points)][0] * points[i][1]
        for i in range(len(points))
    )
    if doubled_area == 0:
        return "the polygon has no area (its points are on one line)"
    return None
