"""Attachments function: presigned S3 upload URLs. Wiring only; logic in `aurora.attachments`."""

from typing import Annotated

from aws_lambda_powertools import Logger
from fastapi import Depends

from aurora import attachments
from aurora.http import create_api, current_user, lambda_handler
from aurora.settings import get_settings
from aurora.tokens import Claims

logger = Logger(service="attachments")
app = create_api("AuroraChat attachments")


@app.post("/api/attachments")
def create_upload(
    request: attachments.UploadRequest, user: Annotated[Claims, Depends(current_user)]
) -> dict:
    settings = get_settings()
    client = attachments.s3_client(settings.s3_endpoint_url)
    upload = attachments.create_upload(request, user.user_id, settings, client)
    logger.info("upload presigned", extra={"user_id": user.user_id, "size": request.size})
    return upload


handler = lambda_handler(app, logger)
