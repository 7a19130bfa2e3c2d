"""The `recording-storage` command."""

from mirante.cli import run_service_cli
from recording_storage.main import SERVICE


def main(argv: list[str] | None = None) -> int:
    return run_service_cli(SERVICE, argv)
