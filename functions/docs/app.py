"""Docs function: one OpenAPI document for every REST function, and Swagger UI
from the copy Powertools ships for offline use (no outside host at run time).

Its code is the whole `functions/` folder, so the document is built from the
very apps that are deployed beside it: it cannot go stale.
"""

from __future__ import annotations

import importlib.util
from functools import cache
from pathlib import Path
from typing import Any

from aws_lambda_powertools import Logger
from aws_lambda_powertools.event_handler.openapi import swagger_ui
from fastapi import FastAPI, HTTPException
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.openapi.utils import get_openapi
from fastapi.responses import FileResponse, HTMLResponse

from aurora.http import create_api, lambda_handler

FUNCTIONS = Path(__file__).resolve().parent.parent
ASSETS = Path(swagger_ui.__file__).parent
# The names the page asks for -> Powertools' files.
SERVED_ASSETS = {
    "swagger-ui-bundle.js": "swagger-ui-bundle.min.js",
    "swagger-ui.css": "swagger-ui.min.css",
}
TITLE = "AuroraChat API"

logger = Logger(service="docs")
app = create_api(TITLE)


def function_apps() -> dict[str, FastAPI]:
    """Every sibling function whose handler module defines a FastAPI `app`."""
    apps = {}
    for module_file in sorted(FUNCTIONS.glob("*/app.py")):
        name = module_file.parent.name
        if name == Path(__file__).parent.name:
            continue
        spec = importlib.util.spec_from_file_location(f"aurora_docs_{name}", module_file)
        if spec is None or spec.loader is None:
            continue
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        if isinstance(getattr(module, "app", None), FastAPI):
            apps[name] = module.app
    return apps


@cache
def merged_document() -> dict[str, Any]:
    """The OpenAPI document of every function's routes, built once per container."""
    routes = [route for fn in function_apps().values() for route in fn.routes]
    return get_openapi(
        title=TITLE,
        version="1",
        description="Every REST route of every AuroraChat function, in one document.",
        routes=routes,
    )


@app.get("/api/openapi.json", include_in_schema=False)
async def openapi_document() -> dict[str, Any]:
    # On the invocation's own thread and loop (async def), not a worker thread:
    # importing the apps builds their Mangum adapters, which want that loop.
    return merged_document()


@app.get("/api/docs", include_in_schema=False)
def docs_page() -> HTMLResponse:
    # Relative URLs: the page works under any prefix (an API Gateway stage, a
    # CloudFront path) without knowing it.
    return get_swagger_ui_html(
        openapi_url="openapi.json",
        title=TITLE,
        swagger_js_url="docs/swagger-ui-bundle.js",
        swagger_css_url="docs/swagger-ui.css",
        # FastAPI's default icon lives on its website: none rather than a fetch.
        swagger_favicon_url="data:,",
        oauth2_redirect_url=None,
        # No badge fetched from the public validator service.
        swagger_ui_parameters={"validatorUrl": None},
    )


@app.get("/api/docs/{asset}", include_in_schema=False)
def docs_asset(asset: str) -> FileResponse:
    if asset not in SERVED_ASSETS:
        raise HTTPException(status_code=404)
    # The files change only with the package: let browsers keep them a day.
    return FileResponse(
        ASSETS / SERVED_ASSETS[asset], headers={"Cache-Control": "public, max-age=86400"}
    )


handler = lambda_handler(app, logger)
