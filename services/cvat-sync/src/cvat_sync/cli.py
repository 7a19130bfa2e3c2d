"""The `cvat-sync` command."""

from cvat_sync.main import SERVICE
from mirante.cli import run_service_cli


def main(argv: list[str] | None = None) -> int:
    return run_service_cli(SERVICE, argv)
