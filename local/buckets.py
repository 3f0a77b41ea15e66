"""The attachments bucket on the local S3 (moto or LocalStack), created on start
with the CORS rule a browser upload from the local page needs, and the
cloud's expiry of uploads nobody posted (moto stores it without applying it)."""

from __future__ import annotations

from collections.abc import Mapping


def ensure_bucket(env: Mapping[str, str]) -> None:
    import boto3
    from botocore.config import Config

    client = boto3.client(
        "s3",
        endpoint_url=env["AWS_ENDPOINT_URL_S3"],
        region_name=env["AWS_DEFAULT_REGION"],
        aws_access_key_id=env["AWS_ACCESS_KEY_ID"],
        aws_secret_access_key=env["AWS_SECRET_ACCESS_KEY"],
        config=Config(s3={"addressing_style": "path"}),
    )
    bucket = env["ATTACHMENTS_BUCKET"]
    existing = {b["Name"] for b in client.list_buckets().get("Buckets", [])}
    if bucket not in existing:
        client.create_bucket(Bucket=bucket)
    client.put_bucket_cors(
        Bucket=bucket,
        CORSConfiguration={
            "CORSRules": [
                {
                    "AllowedMethods": ["POST", "GET", "HEAD"],
                    "AllowedOrigins": ["http://localhost:*", "http://127.0.0.1:*"],
                    "AllowedHeaders": ["*"],
                    "MaxAgeSeconds": 600,
                }
            ]
        },
    )
    client.put_bucket_lifecycle_configuration(
        Bucket=bucket,
        LifecycleConfiguration={
            "Rules": [
                {
                    "ID": "expire-pending-uploads",
                    "Status": "Enabled",
                    "Filter": {"Prefix": "pending/"},
                    "Expiration": {"Days": 1},
                }
            ]
        },
    )
