"""The HTTP front of the local stack: API routes from template.yaml go to the
real handlers as API Gateway events; everything else is the frontend, served
with the page's Content-Security-Policy header."""

from __future__ import annotations

import logging
import mimetypes
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from starlette.middleware.cors import CORSMiddleware
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.staticfiles import StaticFiles
from starlette.types import Message, Receive, Scope, Send

from aurora.origins import LOCAL_ORIGIN
from local.apigw import http_api_event, proxy_response
from local.runtime import LocalFunction

MAX_BODY_BYTES = 10 * 1024 * 1024  # API Gateway's payload limit
HEALTH_PATHS = {"/api/health"}
log = logging.getLogger("aurora.local.http")

# The page's policy but for connect-src. A header, not only index.html's
# <meta>: a meta policy cannot forbid framing (frame-ancestors), and the
# header narrows connect-src to the origins the page talks to. template.yaml's
# FrontendHeadersPolicy sends the same policy from CloudFront.
CSP_DIRECTIVES = (
    "default-src 'self'",
    "script-src 'self'",
    "style-src 'self'",
    "img-src 'self' data: blob:",
    "connect-src 'self' {connect}",
    "object-src 'none'",
    "base-uri 'none'",
    "form-action 'none'",
    "frame-ancestors 'none'",
)

# The page also fetches the fan-out's /healthz over http(s), to tell offline
# from down: a WebSocket origin is listed in both schemes (browsers differ in
# whether one covers the other).
_HTTP_OF = {"ws": "http", "wss": "https"}


def content_security_policy(*urls: str) -> str:
    """The page's CSP, connecting only to itself and the origins of `urls`
    (the API, the fan-out, the S3 that presigned URLs name)."""
    origins = []
    for parts in map(urlsplit, filter(None, urls)):
        origins.append(f"{parts.scheme}://{parts.netloc}")
        if parts.scheme in _HTTP_OF:
            origins.append(f"{_HTTP_OF[parts.scheme]}://{parts.netloc}")
    return "; ".join(CSP_DIRECTIVES).format(connect=" ".join(dict.fromkeys(origins)))


def build_app(functions: list[LocalFunction], frontend: Path, urls: dict[str, Any]):
    routes = [(route, fn) for fn in functions for route in fn.function.routes]
    # Browsers run a module script only if it is served as JavaScript, and on
    # Windows mimetypes takes .js's type from the registry (often text/plain).
    mimetypes.add_type("text/javascript", ".js")
    static = StaticFiles(directory=frontend, html=True)
    public_config = {"api_url": urls["api_url"], "ws_url": urls["ws_url"]}
    csp = content_security_policy(urls["api_url"], urls["ws_url"], urls.get("s3_public_url", ""))

    async def page(scope: Scope, receive: Receive, send: Send) -> None:
        async def send_with_csp(message: Message) -> None:
            if message["type"] == "http.response.start":
                message.setdefault("headers", []).append((b"content-security-policy", csp.encode()))
            await send(message)

        await static(scope, receive, send_with_csp)

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return
        request = Request(scope, receive)
        path = request.url.path
        for route, fn in routes:
            params = route.match(request.method, path)
            if params is not None:
                response = await _invoke(fn, route, request, params)
                # Health checks come every few seconds from compose and scripts.
                level = logging.DEBUG if path in HEALTH_PATHS else logging.INFO
                log.log(level, "%s %s %d", request.method, path, response.status_code)
                await response(scope, receive, send)
                return
        if path == "/config.json":
            await JSONResponse(public_config)(scope, receive, send)
        elif path.startswith("/api/"):
            await JSONResponse({"message": "Not Found"}, status_code=404)(scope, receive, send)
        else:
            await page(scope, receive, send)

    # API Gateway answers CORS itself; locally any localhost origin may call.
    return CORSMiddleware(
        app,
        allow_origin_regex=LOCAL_ORIGIN.pattern,
        allow_methods=["GET", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"],
        allow_headers=["Authorization", "Content-Type"],
        max_age=600,
    )


async def _invoke(fn: LocalFunction, route, request: Request, params: dict[str, str]) -> Response:
    body = b""
    async for chunk in request.stream():
        body += chunk
        if len(body) > MAX_BODY_BYTES:
            return JSONResponse({"message": "Request Entity Too Large"}, status_code=413)
    event = http_api_event(
        route=route,
        method=request.method,
        path=request.url.path,
        raw_query=request.url.query,
        headers=request.headers.items(),
        body=body,
        source_ip=request.client.host if request.client else "127.0.0.1",
        path_parameters=params,
    )
    try:
        result = await fn.ainvoke(event)
    except Exception:
        # What API Gateway answers when the function itself fails.
        return JSONResponse({"message": "Internal Server Error"}, status_code=500)
    status, headers, raw = proxy_response(result)
    response = Response(raw, status_code=status)
    for name, value in headers:
        response.headers.append(name, value)
    return response
