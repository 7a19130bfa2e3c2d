"""The top-level parts of cvat_sync import each other without a loop."""

from mirante.testing.imports import assert_no_import_cycles


def test_cvat_sync_parts_import_each_other_without_a_loop() -> None:
    assert_no_import_cycles("cvat_sync")
