"""HTTP endpoints of the sync feature."""

from fastapi import APIRouter

router = APIRouter()
