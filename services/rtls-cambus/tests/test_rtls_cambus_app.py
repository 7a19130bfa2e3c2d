"""rtls-cambus starts, answers its operations endpoints, and owns its schema."""

import os
import subprocess
import sys

from sqlalchemy.ext.asyncio import AsyncSession

from mirante.service import discover_services
from mirante.settings import InfraSettings
from mirante.testing.contract import check_service_basics
from mirante.testing.plugin import ClientFactory
from rtls_cambus.config import Settings
from rtls_cambus.main import SERVICE, create_app


async def test_service_basics(
    make_client: ClientFactory, infra_settings: InfraSettings, db_session: AsyncSession
) -> None:
    client = await make_client(create_app(Settings(infra=infra_settings, mqtt_ingest_enabled=False)))
    await check_service_basics(client, SERVICE, db_session)


def test_the_suite_streams_are_read_without_importing_the_other_services() -> None:
    # A fresh interpreter: this test process has imported every service already.
    others = sorted(spec.package for spec in discover_services() if spec.name != SERVICE.name)
    program = f"""
import sys
from rtls_cambus.alerts.engine import event_streams as alert_streams
from rtls_cambus.config import Settings
from rtls_cambus.incidents.engine import event_streams as incident_streams
from rtls_cambus.main import create_app
from rtls_cambus.outgoing.dispatcher import stream_names

create_app(Settings())
settings = Settings()
streams = {{tuple(sorted(read(settings))) for read in (alert_streams, incident_streams, stream_names)}}
print(sorted(streams))
print(sorted(name for name in sys.modules if name.partition(".")[0] in {others!r}))
"""
    environment = {name: value for name, value in os.environ.items() if not name.startswith(SERVICE.env_prefix)}
    result = subprocess.run(
        [sys.executable, "-c", program], capture_output=True, text=True, env=environment, timeout=120, check=True
    )
    streams, imported = result.stdout.splitlines()

    assert streams == repr([tuple(sorted(spec.stream for spec in discover_services()))])
    assert imported == "[]"
