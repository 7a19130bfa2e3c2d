"""HTTP endpoints of the jobs feature."""

from fastapi import APIRouter

router = APIRouter()
