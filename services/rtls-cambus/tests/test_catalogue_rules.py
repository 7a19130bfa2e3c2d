"""The pure rules of the catalogue: MAC forms, image headers, zone polygons."""

from __future__ import annotations

import re
from collections.abc import Callable

import pytest

from rtls_cambus import identifiers
from rtls_cambus.floor_plans.images import ImageRefusedError, inspect_image
from rtls_cambus.identifiers import MAC_INPUT_MAX_LENGTH, MAC_INPUT_PATTERN, normalise_mac
from rtls_cambus.zones.geometry import polygon_problem


@pytest.mark.parametrize(
    "given",
    ["aa:bb:cc:dd:ee:ff", "AA-BB-CC-DD-EE-FF", "aabb.ccdd.eeff", "AABBCCDDEEFF", "  aa:bb:cc:dd:ee:ff "],
)
def test_common_mac_forms_normalise_to_one(given: str) -> None:
    assert normalise_mac(given) == "AA:BB:CC:DD:EE:FF"


@pytest.mark.parametrize(
    "given",
    [
        "",
        "aa:bb:cc:dd:ee",
        "aa:bb-cc:dd:ee:ff",
        "gg:bb:cc:dd:ee:ff",
        "aabbccddeeff00",
        "aa:bb:cc:dd:ee:ff\x00",
        "a" * 5000,
    ],
)
def test_other_text_is_not_a_mac(given: str) -> None:
    assert normalise_mac(given) is None


@pytest.mark.parametrize(
    "given",
    [
        "aa:bb:cc:dd:ee:ff",
        "AA-BB-CC-DD-EE-FF",
        "aabb.ccdd.eeff",
        " aabbccddeeff\n",
        "",
        "aa:bb-cc:dd:ee:ff",
        "gg:bb:cc:dd:ee:ff",
        "aabbccddeeff00",
        "aa:bb:cc:dd:ee:ff\x00",
        "0",
    ],
)
def test_the_documented_mac_pattern_is_what_the_api_takes(given: str) -> None:
    # A tag MAC of 17 arbitrary characters once passed the schema (maxLength only) and was refused.
    documented = len(given) <= MAC_INPUT_MAX_LENGTH and re.fullmatch(MAC_INPUT_PATTERN, given) is not None
    assert documented == (normalise_mac(given) is not None)


def test_remembered_macs_answer_the_same_and_never_outgrow_their_bound() -> None:
    forms = ["aa:bb:cc:dd:ee:01", "AA-BB-CC-DD-EE-01", "nope", "aabbccddee01"]
    first = [normalise_mac(form) for form in forms]
    assert first == ["AA:BB:CC:DD:EE:01", "AA:BB:CC:DD:EE:01", None, "AA:BB:CC:DD:EE:01"]
    # Input that never repeats (a flood of made-up MACs) passes the bound of what is remembered.
    for number in range(identifiers._NORMALISED_MAX + 10):
        assert normalise_mac(f"{number:012x}") is not None
    assert len(identifiers._NORMALISED) <= identifiers._NORMALISED_MAX
    assert [normalise_mac(form) for form in forms] == first


def test_png_and_jpeg_sizes_come_from_their_headers(make_png: ImageMaker, make_jpeg: ImageMaker) -> None:
    assert inspect_image(make_png(3, 2)).width == 3
    info = inspect_image(make_jpeg(640, 480))
    assert (info.content_type, info.width, info.height) == ("image/jpeg", 640, 480)


@pytest.mark.parametrize(
    "data",
    [
        b"<svg xmlns='http://www.w3.org/2000/svg'><script>alert(1)</script></svg>",
        b"<?xml version='1.0'?>\n<svg/>",
        b"GIF89a....",
        b"\x89PNG\r\n\x1a\n",
        b"\xff\xd8\xff\xe0\x00",
        b"",
    ],
)
def test_anything_else_is_refused(data: bytes) -> None:
    with pytest.raises(ImageRefusedError):
        inspect_image(data)


ImageMaker = Callable[[int, int], bytes]

SQUARE = [(10.0, 10.0), (90.0, 10.0), (90.0, 90.0), (10.0, 90.0)]


def test_a_simple_polygon_inside_the_plan_passes() -> None:
    assert polygon_problem(SQUARE, 100, 100) is None


@pytest.mark.parametrize(
    ("points", "words"),
    [
        ([(10.0, 10.0), (90.0, 10.0)], "at least 3"),
        ([(10.0, 10.0), (190.0, 10.0), (90.0, 90.0)], "outside"),
        ([(10.0, 10.0), (90.0, 90.0), (90.0, 10.0), (10.0, 90.0)], "cross"),
        ([(10.0, 10.0), (20.0, 20.0), (30.0, 30.0)], "no area"),
    ],
)
def test_bad_polygons_say_why(points: list[tuple[float, float]], words: str) -> None:
    problem = polygon_problem(points, 100, 100)
    assert problem is not None and words in problem
