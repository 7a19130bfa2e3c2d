"""The top-level parts of `mirante` (`db`, `web`, `bus`, `auth`, ...) import each other without a loop."""

from mirante.testing.imports import assert_no_import_cycles


def test_mirante_parts_import_each_other_without_a_loop() -> None:
    assert_no_import_cycles("mirante")
