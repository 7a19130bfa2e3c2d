"""cvat-sync starts, answers its operations endpoints, and owns its schema."""

from sqlalchemy.ext.asyncio import AsyncSession

from cvat_sync.config import Settings
from cvat_sync.main import SERVICE, create_app
from mirante.settings import InfraSettings
from mirante.testing.contract import check_service_basics
from mirante.testing.plugin import ClientFactory


async def test_service_basics(
    make_client: ClientFactory, infra_settings: InfraSettings, db_session: AsyncSession
) -> None:
    client = await make_client(create_app(Settings(infra=infra_settings)))
    await check_service_basics(client, SERVICE, db_session)
