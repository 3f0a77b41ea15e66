"""Files for the attachment tests: a real PNG, and an upload to the stack's S3
made as the browser makes it (grant, then a presigned POST)."""

from __future__ import annotations

import struct
import zlib

import httpx


def png(width: int, height: int) -> bytes:
    """A valid PNG of red pixels, `width` by `height`."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        crc = struct.pack(">I", zlib.crc32(kind + data))
        return struct.pack(">I", len(data)) + kind + data + crc

    rows = b"".join(b"\x00" + b"\xff\x00\x00" * width for _ in range(height))
    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)  # 8-bit RGB
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(rows))
        + chunk(b"IEND", b"")
    )


def upload(api: str, token: str, filename: str, content_type: str, content: bytes) -> dict:
    """Ask for an upload and post the file to S3 as a browser would; the grant."""
    grant = httpx.post(
        f"{api}/api/attachments",
        json={"filename": filename, "content_type": content_type, "size": len(content)},
        headers={"Authorization": f"Bearer {token}"},
    ).json()
    response = httpx.post(
        grant["upload"]["url"], data=grant["upload"]["fields"], files={"file": ("f", content)}
    )
    assert response.status_code == 204
    return grant
