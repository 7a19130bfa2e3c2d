"""The `telemetry-ingest` command."""

from mirante.cli import run_service_cli
from telemetry_ingest.main import SERVICE


def main(argv: list[str] | None = None) -> int:
    return run_service_cli(SERVICE, argv)
