"""Attachments function: presigned S3 upload and download links.
Wiring only; logic in `aurora.attachments`."""

from typing import Annotated

from aws_lambda_powertools import Logger
from fastapi import Query

from aurora import attachments, budget, membership
from aurora.backends import redis_client
from aurora.http import User, create_api, error_responses, lambda_handler
from aurora.settings import get_settings

logger = Logger(service="attachments")
app = create_api("AuroraChat attachments")


@app.post("/api/attachments", responses=error_responses(400, 401, 403, 503))
def create_upload(request: attachments.UploadRequest, user: User) -> dict:
    settings = get_settings()
    client, signer = attachments.clients(settings)
    attachments.check_request(request, settings)  # a refused request costs no budget
    budget.take_storage(redis_client(settings.redis_url), settings, user.user_id, request.size)
    upload = attachments.create_upload(request, user.user_id, settings, client, signer)
    logger.info("upload presigned", extra={"user_id": user.user_id, "size": request.size})
    return upload


@app.get("/api/attachments/link", responses=error_responses(400, 401, 403, 503))
def download_link(user: User, url: Annotated[str, Query(min_length=1, max_length=2048)]) -> dict:
    settings = get_settings()
    client, signer = attachments.clients(settings)
    membership.check_download(url, user, settings, client, redis_client(settings.redis_url))
    return attachments.download_link(url, settings, client, signer, caller=user.user_id)


handler = lambda_handler(app, logger)
