"""rtls-cambus starts, answers its operations endpoints, and owns its schema."""

from sqlalchemy.ext.asyncio import AsyncSession

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
