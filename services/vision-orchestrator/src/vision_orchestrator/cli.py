"""The `vision-orchestrator` command."""

from mirante.cli import run_service_cli
from vision_orchestrator.main import SERVICE


def main(argv: list[str] | None = None) -> int:
    return run_service_cli(SERVICE, argv)
