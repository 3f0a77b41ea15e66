"""Attachments function: presigned S3 upload and download links.
Wiring only; logic in `aurora.attachments`."""

from typing import Annotated

from aws_lambda_powertools import Logger
from fastapi import Depends, Header, Query

from aurora import attachments
from aurora.errors import AuthenticationError
from aurora.http import create_api, lambda_handler
from aurora.settings import get_settings
from aurora.tokens import Claims, verify_token

logger = Logger(service="attachments")
app = create_api("AuroraChat attachments")


def bearer(authorization: Annotated[str, Header()] = "") -> Claims:
    """The caller's verified token claims (`Authorization: Bearer <token>`)."""
    scheme, _, token = authorization.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise AuthenticationError("Missing bearer token", code="missing_token")
    return verify_token(token.strip(), get_settings())


@app.post("/api/attachments")
def create_upload(
    request: attachments.UploadRequest, user: Annotated[Claims, Depends(bearer)]
) -> dict:
    settings = get_settings()
    client = attachments.s3_client(settings.s3_endpoint_url)
    upload = attachments.create_upload(request, user.user_id, settings, client)
    logger.info("upload presigned", extra={"user_id": user.user_id, "size": request.size})
    return upload


@app.get("/api/attachments/link", dependencies=[Depends(bearer)])
def download_link(url: Annotated[str, Query(min_length=1, max_length=2048)]) -> dict:
    settings = get_settings()
    client = attachments.s3_client(settings.s3_endpoint_url)
    return attachments.download_link(url, settings, client)


handler = lambda_handler(app, logger)
