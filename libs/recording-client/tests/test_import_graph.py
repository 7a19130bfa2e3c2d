"""The top-level modules of `recording_client` import each other without a loop, and nothing of the server."""

from mirante.testing.imports import assert_no_import_cycles, third_party_imports


def test_recording_client_parts_import_each_other_without_a_loop() -> None:
    assert_no_import_cycles("recording_client")


def test_the_client_needs_nothing_but_httpx_and_the_standard_library() -> None:
    # A desktop recorder installs the client alone: its only dependency is the one its pyproject declares.
    assert third_party_imports("recording_client") == {"httpx"}
