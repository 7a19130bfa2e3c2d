"""405 answers that name every method the path serves in `Allow` (RFC 9110 requires the header).

Starlette stops at the first route whose path matches, so when a path's methods are spread over several routes
(one per handler, as FastAPI registers them) its own `Allow` names only that route's methods.
"""

from __future__ import annotations

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse

from mirante.web.errors import error_response
from mirante.web.openapi import allowed_methods


def _route_path(request: Request) -> str:
    root_path: str = request.scope.get("root_path", "")
    path: str = request.scope["path"]
    return path.removeprefix(root_path) if root_path else path


async def method_not_allowed(request: Request, exc: Exception) -> JSONResponse:
    """The error envelope with `Allow` listing the methods some route serves at the request's path."""
    allow = ", ".join(allowed_methods(request.app, _route_path(request)))
    return error_response(
        405, "method_not_allowed", f"{request.method} is not served here; allowed: {allow}", headers={"Allow": allow}
    )


def install_method_not_allowed(app: FastAPI) -> None:
    """Answer every 405 of `app` with `method_not_allowed`."""
    app.add_exception_handler(405, method_not_allowed)
