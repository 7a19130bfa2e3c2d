"""HTTP endpoints of the webhooks feature."""

from fastapi import APIRouter

router = APIRouter()
