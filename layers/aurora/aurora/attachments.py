"""Message attachments: presigned S3 uploads, and the check a message's
attachment must pass before the message may carry it.

Clients upload straight to S3 with a presigned POST whose policy pins the
key, the content type and the exact size. S3 enforces that policy; moto (the
local S3) does not, so `verify_attachment` never trusts the upload: it reads
the stored object's size and content type (HEAD) and compares them with the
limits and with what the message claims.

An upload lands under `pending/`; the URL a message carries names the same
path under `attachments/`, where only the servers write. The first check of
an upload copies exactly the object it checked (by ETag) to that key, once
(the copy refuses to replace an existing object): replacing the pending file
afterwards changes nothing a message names. Pending uploads nobody posted
expire by the bucket's lifecycle rule (`template.yaml`).
"""

from __future__ import annotations

import hashlib
import re
import unicodedata
import uuid
from functools import lru_cache
from typing import TYPE_CHECKING, Any
from urllib.parse import quote, unquote, urlsplit

import pydantic

from aurora.errors import UnavailableError, ValidationError, invalid_input
from aurora.keyspace import attachment_rooms_key, attachment_withdrawn_key
from aurora.settings import Settings

if TYPE_CHECKING:
    import redis
    import redis.asyncio

KEY_PREFIX = "attachments"  # checked files, written by the servers only
PENDING_PREFIX = "pending"  # uploads, written by browsers through presigned POSTs
MAX_PER_MESSAGE = 5
MAX_FILENAME_CHARS = 120
MAX_IMAGE_SIDE = 65_535  # pixels
_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")

# The extension a stored file gets, from its declared type, never from the
# name the client sent: a PNG named `page.html` is stored as `page.png`.
# Types allowed by ATTACHMENT_CONTENT_TYPES but not listed here get `.bin`.
EXTENSIONS = {
    "image/png": "png",
    "image/jpeg": "jpg",
    "image/gif": "gif",
    "image/webp": "webp",
    "application/pdf": "pdf",
    "text/plain": "txt",
}


class UploadRequest(pydantic.BaseModel):
    """What a client asks for: the file it is about to upload."""

    model_config = pydantic.ConfigDict(extra="forbid")

    filename: str = pydantic.Field(min_length=1, max_length=255)
    content_type: str = pydantic.Field(min_length=1, max_length=255)
    size: int = pydantic.Field(gt=0)


class Attachment(pydantic.BaseModel):
    """The metadata a message carries for each attachment."""

    model_config = pydantic.ConfigDict(extra="forbid", strict=True)

    url: str = pydantic.Field(min_length=1, max_length=2048)
    file_type: str = pydantic.Field(min_length=1, max_length=255)
    size: int = pydantic.Field(gt=0)
    filename: str = pydantic.Field(min_length=1, max_length=255)
    # An image's pixel size, as its sender's client measured it: readers size
    # its place before fetching it. Only a layout hint, never checked against
    # the file (a wrong one only misshapes the sender's own picture).
    width: int | None = pydantic.Field(default=None, ge=1, le=MAX_IMAGE_SIDE)
    height: int | None = pydantic.Field(default=None, ge=1, le=MAX_IMAGE_SIDE)

    @pydantic.model_serializer(mode="wrap")
    def _without_absent(self, handler: pydantic.SerializerFunctionWrapHandler) -> dict:
        # A message without dimensions keeps the shape it always had.
        return {k: v for k, v in handler(self).items() if v is not None}


@lru_cache(maxsize=4)
def s3_client(endpoint_url: str = "", region: str | None = None) -> Any:
    """One S3 client per process. SigV4 always (presigned POST policies need it);
    path-style addressing only for a local endpoint (moto, LocalStack)."""
    import boto3
    from botocore.config import Config

    style = "path" if endpoint_url else "auto"
    return boto3.client(
        "s3",
        endpoint_url=endpoint_url or None,
        region_name=region,
        config=Config(
            signature_version="s3v4",
            s3={"addressing_style": style},
            # A HEAD stands between a user and their message: an unreachable
            # S3 must become a quick `unavailable`, not a minute of retries.
            connect_timeout=2,
            read_timeout=5,
            retries={"mode": "standard", "max_attempts": 2},
        ),
    )


def clients(settings: Settings) -> tuple[Any, Any]:
    """The servers' S3 client and the one that signs URLs for browsers: one
    and the same unless `S3_PUBLIC_ENDPOINT_URL` is set; made once per container."""
    return s3_client(settings.s3_endpoint_url), presigning_client(settings)


def presigning_client(settings: Settings, region: str | None = None) -> Any:
    """The client that signs URLs for browsers: on `S3_PUBLIC_ENDPOINT_URL` when
    browsers reach S3 at another address than the servers do (docker compose),
    else the servers' own client. Signed for that host from the start: SigV4
    covers the Host header, so rewriting a signed URL would break it."""
    return s3_client(settings.s3_presign_endpoint_url, region)


def safe_filename(name: str) -> str:
    """A file name that is safe as the last part of an S3 key and in a
    Content-Disposition: no directories, no control or shell characters."""
    name = unicodedata.normalize("NFKC", name).replace("\\", "/").rsplit("/", 1)[-1]
    stem, dot, ext = name.rpartition(".")
    if not dot:
        stem, ext = name, ""
    stem = _UNSAFE.sub("_", stem).strip("._-")[: MAX_FILENAME_CHARS - 10] or "file"
    ext = _UNSAFE.sub("", ext)[:9]
    return f"{stem}.{ext}" if ext else stem


def stored_filename(name: str, content_type: str) -> str:
    """The client's file name made safe, with the extension of its type."""
    stem = safe_filename(name)
    stem = stem.rsplit(".", 1)[0] if "." in stem else stem
    return f"{stem or 'file'}.{EXTENSIONS.get(content_type.lower(), 'bin')}"


def pending_key(key: str) -> str:
    """Where the upload for the checked key `attachments/…` is POSTed."""
    return f"{PENDING_PREFIX}/{key[len(KEY_PREFIX) + 1 :]}"


def _check_type_and_size(content_type: str, size: int, settings: Settings) -> None:
    if content_type.lower() not in settings.attachment_content_types:
        raise ValidationError(
            f"File type {content_type!r} is not allowed; allowed: "
            + ", ".join(settings.attachment_content_types),
            code="unsupported_file_type",
        )
    if size > settings.attachment_max_bytes:
        raise ValidationError(
            f"File is larger than {settings.attachment_max_bytes} bytes",
            code="attachment_too_large",
        )


def object_url(settings: Settings, key: str, client: Any) -> str:
    """The stable URL of a stored object (the bucket is private: it names the
    object, downloads need a presigned GET)."""
    base = client.meta.endpoint_url.rstrip("/")
    return f"{base}/{settings.attachments_bucket}/{quote(key)}"


def key_from_url(settings: Settings, url: str, client: Any) -> str | None:
    """The object key an attachment URL names, or None if it is not one of ours."""
    prefix = object_url(settings, "", client)
    if not url.startswith(prefix) or urlsplit(url).query or urlsplit(url).fragment:
        return None
    key = unquote(url[len(prefix) :])
    if not key.startswith(f"{KEY_PREFIX}/") or ".." in key.split("/"):
        return None
    return key


def check_request(request: UploadRequest, settings: Settings) -> None:
    """ValidationError if the declared type or size may not be uploaded."""
    _check_type_and_size(request.content_type.lower(), request.size, settings)


def create_upload(
    request: UploadRequest, user_id: str, settings: Settings, client: Any, signer: Any = None
) -> dict[str, Any]:
    """A presigned POST for one file of `request.size` bytes of `request.content_type`,
    and the attachment metadata a message will carry once it is uploaded.

    `signer` (default `client`) signs the POST for the browser's address
    (`presigning_client`); the metadata's URL stays on `client`'s endpoint, the
    one every server checks it against, so the fan-out needs no public address."""
    content_type = request.content_type.lower()
    _check_type_and_size(content_type, request.size, settings)
    filename = stored_filename(request.filename, content_type)
    key = f"{KEY_PREFIX}/{user_id}/{uuid.uuid4().hex}/{filename}"
    post = (signer or client).generate_presigned_post(
        Bucket=settings.attachments_bucket,
        Key=pending_key(key),
        Fields={"Content-Type": content_type},
        Conditions=[
            {"Content-Type": content_type},
            # Exactly the declared size: the message will claim it.
            ["content-length-range", request.size, request.size],
        ],
        ExpiresIn=settings.attachment_url_ttl_seconds,
    )
    return {
        "upload": {"url": post["url"], "fields": post["fields"]},
        "attachment": {
            "url": object_url(settings, key, client),
            "file_type": content_type,
            "size": request.size,
            "filename": filename,
        },
        "expires_in": settings.attachment_url_ttl_seconds,
    }


def verify_attachment(
    metadata: object, user_id: str, settings: Settings, client: Any
) -> Attachment:
    """The attachment a message may carry, checked against the stored object.

    Raises `ValidationError` (`invalid_attachment`, `attachment_not_found`,
    `attachment_mismatch`, `unsupported_file_type`, `attachment_too_large`).
    """
    try:
        attachment = Attachment.model_validate(metadata)
    except pydantic.ValidationError as exc:
        raise invalid_input(exc.errors(), "Invalid attachment", code="invalid_attachment") from None
    _check_type_and_size(attachment.file_type, attachment.size, settings)
    key = key_from_url(settings, attachment.url, client)
    # Only the uploader's own objects: a key names its owner.
    if key is None or not key.startswith(f"{KEY_PREFIX}/{user_id}/"):
        raise ValidationError("Attachment URL is not an upload of yours", code="invalid_attachment")
    if key.rsplit("/", 1)[-1] != attachment.filename:
        raise ValidationError(
            "Attachment filename does not match its URL", code="invalid_attachment"
        )
    head = _head(client, settings, key)
    if head is None:  # not checked yet: check the upload, then make it the file
        upload = _head(client, settings, pending_key(key))
        if upload is None:
            raise ValidationError(
                "Attachment was not uploaded (or has expired)", code="attachment_not_found"
            )
        _check_stored(upload, attachment, settings)
        if _promote(client, settings, key, upload):
            return attachment
        head = _head(client, settings, key)  # another check promoted it first
        if head is None:
            raise _changed()
    _check_stored(head, attachment, settings)
    return attachment


def _head(client: Any, settings: Settings, key: str) -> dict[str, Any] | None:
    """The stored object's metadata; None if there is none."""
    from botocore.exceptions import BotoCoreError, ClientError

    try:
        return client.head_object(Bucket=settings.attachments_bucket, Key=key)
    except ClientError as exc:
        if _status(exc) in (403, 404):
            return None
        raise UnavailableError("Attachment storage is unavailable") from None
    except BotoCoreError:
        raise UnavailableError("Attachment storage is unavailable") from None


def _check_stored(head: dict[str, Any], attachment: Attachment, settings: Settings) -> None:
    stored_type = str(head.get("ContentType", "")).split(";")[0].strip().lower()
    stored_size = int(head.get("ContentLength", -1))
    # The stored object is the truth: S3 enforces the POST policy, moto does not.
    _check_type_and_size(stored_type, stored_size, settings)
    if stored_size != attachment.size or stored_type != attachment.file_type.lower():
        raise ValidationError(
            "Attachment does not match the uploaded file (size or type)",
            code="attachment_mismatch",
        )


def _promote(client: Any, settings: Settings, key: str, upload: dict[str, Any]) -> bool:
    """Copy the checked upload (that very content: its ETag) to `key`, unless
    `key` exists already (False: another check got there first). An upload
    replaced while it was being checked is refused."""
    from botocore.exceptions import BotoCoreError, ClientError

    bucket, etag = settings.attachments_bucket, upload["ETag"]
    try:
        copied = client.copy_object(
            Bucket=bucket,
            Key=key,
            CopySource={"Bucket": bucket, "Key": pending_key(key)},
            CopySourceIfMatch=etag,  # the content that was checked, or nothing
            IfNoneMatch="*",  # a checked file is never replaced
            MetadataDirective="REPLACE",
            ContentType=str(upload.get("ContentType", "")),
        )
    except ClientError as exc:
        if _status(exc) == 412:  # the upload changed, or the file exists: look again
            return False
        if _status(exc) in (403, 404):
            raise _changed() from None
        raise UnavailableError("Attachment storage is unavailable") from None
    except BotoCoreError:
        raise UnavailableError("Attachment storage is unavailable") from None
    if copied["CopyObjectResult"]["ETag"] != etag:
        # A store that ignored the condition (moto does) copied other content.
        client.delete_object(Bucket=bucket, Key=key)
        raise _changed()
    return True


def _status(exc: Any) -> int | None:
    return exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode")


def _changed() -> ValidationError:
    return ValidationError(
        "Attachment was replaced while it was being checked", code="attachment_mismatch"
    )


def verify_attachments(
    items: object, user_id: str, settings: Settings, client: Any
) -> list[Attachment]:
    """Every attachment of one message, checked (at most `MAX_PER_MESSAGE`)."""
    if items is None:
        return []
    if not isinstance(items, list):
        raise ValidationError("attachments must be a list", code="invalid_attachment")
    if len(items) > MAX_PER_MESSAGE:
        raise ValidationError(
            f"A message carries at most {MAX_PER_MESSAGE} attachments", code="invalid_attachment"
        )
    return [verify_attachment(item, user_id, settings, client) for item in items]


def download_link(
    url: str, settings: Settings, client: Any, signer: Any = None, *, caller: str | None = None
) -> dict[str, Any]:
    """A short-lived GET link for an attachment URL of ours (the bucket is private),
    signed by `signer` (default `client`) for the browser's address. The
    uploader (`caller`) of a file not checked yet gets their own upload: their
    page shows a message it is sending before the server has checked it."""
    key = key_from_url(settings, url, client)
    if key is None:
        raise ValidationError("Not an attachment URL of this service", code="invalid_attachment")
    own = caller is not None and key.startswith(f"{KEY_PREFIX}/{caller}/")
    if own and _head(client, settings, key) is None:
        key = pending_key(key)
    link = (signer or client).generate_presigned_url(
        "get_object",
        Params={
            "Bucket": settings.attachments_bucket,
            "Key": key,
            # Never rendered inline by the browser from our bucket's origin.
            "ResponseContentDisposition": f'attachment; filename="{key.rsplit("/", 1)[-1]}"',
        },
        ExpiresIn=settings.attachment_url_ttl_seconds,
    )
    return {"url": link, "expires_in": settings.attachment_url_ttl_seconds}


# -- who may download: the rooms a file was posted in ----------------------------------


def url_digest(url: str) -> str:
    return hashlib.sha256(url.encode("utf-8", "surrogateescape")).hexdigest()


def withdraw(client: redis.Redis, room: str, urls: tuple[str, ...] | list[str]) -> None:
    """The message carrying these files was deleted: no more download links."""
    if urls:
        pipe = client.pipeline(transaction=False)
        _queue_withdraw(pipe, room, urls)
        pipe.execute()


async def withdraw_async(
    client: redis.asyncio.Redis, room: str, urls: tuple[str, ...] | list[str]
) -> None:
    if urls:
        async with client.pipeline(transaction=False) as pipe:
            _queue_withdraw(pipe, room, urls)
            await pipe.execute()


def _queue_withdraw(pipe: Any, room: str, urls: tuple[str, ...] | list[str]) -> None:
    for url in urls:
        pipe.set(attachment_withdrawn_key(url_digest(url)), "1")
        pipe.srem(attachment_rooms_key(url_digest(url)), room)


def is_withdrawn(client: redis.Redis, url: str) -> bool:
    return bool(client.exists(attachment_withdrawn_key(url_digest(url))))


async def record_posted_async(client: redis.asyncio.Redis, room: str, urls: list[str]) -> None:
    """The fan-out, after accepting a message that carries these files in `room`."""
    async with client.pipeline(transaction=False) as pipe:
        for url in urls:
            pipe.sadd(attachment_rooms_key(url_digest(url)), room)
        await pipe.execute()
