"""The top-level modules of `recording_client` import each other without a loop."""

from mirante.testing.imports import assert_no_import_cycles


def test_recording_client_parts_import_each_other_without_a_loop() -> None:
    assert_no_import_cycles("recording_client")
