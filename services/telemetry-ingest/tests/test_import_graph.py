"""The top-level parts of `telemetry_ingest` (feature folders, `config`, `deps`, ...) import each other without
a loop, so each can be read and tested from the parts below it."""

from mirante.testing.imports import assert_no_import_cycles


def test_the_package_parts_import_each_other_without_a_loop() -> None:
    assert_no_import_cycles("telemetry_ingest")
