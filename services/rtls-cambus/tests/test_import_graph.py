"""The top-level parts of rtls_cambus import each other without a loop."""

from mirante.testing.imports import assert_no_import_cycles


def test_rtls_cambus_parts_import_each_other_without_a_loop() -> None:
    assert_no_import_cycles("rtls_cambus")
