"""`GET /api/v1/health`: the library's liveness answer under the API prefix, where the recorder's client (whose
base URL ends in /api/v1) looks for it."""

from fastapi import APIRouter

from mirante.web import health

router = APIRouter(prefix="/api/v1", tags=["operations"])
router.add_api_route(
    "/health", health.health, methods=["GET"], summary="Liveness (under the API prefix)", name="api_health"
)
