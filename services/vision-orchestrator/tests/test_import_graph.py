"""The top-level parts of vision_orchestrator import each other without a loop."""

from mirante.testing.imports import assert_no_import_cycles


def test_vision_orchestrator_parts_import_each_other_without_a_loop() -> None:
    assert_no_import_cycles("vision_orchestrator")
