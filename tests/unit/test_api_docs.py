"""The docs function: one OpenAPI document holding every route of template.yaml,
and a Swagger UI page whose every asset it serves itself (works offline)."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from html.parser import HTMLParser
from pathlib import Path
from typing import Any
from urllib.parse import urljoin, urlsplit

import pytest

from local.runtime import LocalFunction
from local.template import functions

ROOT = Path(__file__).resolve().parents[2]
TEMPLATE = ROOT / "template.yaml"


@pytest.fixture(scope="module")
def docs() -> Iterator[LocalFunction]:
    os.environ.setdefault("POWERTOOLS_METRICS_NAMESPACE", "AuroraChat")
    (function,) = [f for f in functions(TEMPLATE) if f.name == "DocsFunction"]
    fn = LocalFunction(function, concurrency=1)
    yield fn
    fn.close()


def get(fn: LocalFunction, path: str, route: str | None = None) -> dict[str, Any]:
    """A GET through the function, as API Gateway HTTP API (2.0) sends it."""
    context = {"http": {"method": "GET", "path": path, "sourceIp": "127.0.0.1"}}
    return fn.invoke(
        {
            "version": "2.0",
            "routeKey": f"GET {route or path}",
            "rawPath": path,
            "rawQueryString": "",
            "headers": {"host": "localhost"},
            "requestContext": context | {"requestId": "r", "stage": "$default"},
            "isBase64Encoded": False,
        }
    )


class Links(HTMLParser):
    """Every URL a page makes the browser load (src, href)."""

    def __init__(self) -> None:
        super().__init__()
        self.urls: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.urls += [value for name, value in attrs if name in ("src", "href") and value]


def test_every_route_of_every_function_in_the_template_is_in_the_one_document(docs):
    answer = get(docs, "/api/openapi.json")
    assert answer["statusCode"] == 200
    document = json.loads(answer["body"])
    documented = {
        (method.upper(), path) for path, ops in document["paths"].items() for method in ops
    }
    deployed = {
        (route.method, route.path)
        for fn in functions(TEMPLATE)
        if fn.name != "DocsFunction"  # the docs pages themselves are not API routes
        for route in fn.routes
    }
    assert deployed, "no routes read from the template"
    assert deployed - documented == set()
    # Shared schemas come through whole: the one error body, referenced by the routes.
    login = document["paths"]["/api/auth/login"]["post"]["responses"]["429"]
    assert login["content"]["application/json"]["schema"]["$ref"].endswith("/ErrorBody")
    assert "ErrorBody" in document["components"]["schemas"]


def test_the_docs_page_names_no_outside_host_and_every_asset_it_loads_is_served(docs):
    page = get(docs, "/api/docs")
    assert page["statusCode"] == 200
    html = page["body"]
    assert "http://" not in html and "https://" not in html and "'//" not in html
    links = Links()
    links.feed(html)
    loaded = [*links.urls, "openapi.json"]  # the document Swagger UI fetches
    assert {"docs/swagger-ui-bundle.js", "docs/swagger-ui.css"} <= set(links.urls)
    for url in loaded:
        if url.startswith("data:"):  # inline: fetched from nowhere
            continue
        assert not urlsplit(url).netloc and not urlsplit(url).scheme, url
        path = urljoin("/api/docs", url)
        asset = get(docs, path, route="/api/docs/{asset}" if path.count("/") == 3 else None)
        assert asset["statusCode"] == 200, (url, asset.get("body", "")[:200])
        assert len(asset["body"]) > 100, url
    # The public validator badge would be fetched from its own host.
    assert '"validatorUrl": null' in html


def test_only_the_docs_assets_are_served(docs):
    for name in ("app.py", "..%2Fapp.py", "index.html"):
        answer = get(docs, f"/api/docs/{name}", route="/api/docs/{asset}")
        assert answer["statusCode"] == 404, name
