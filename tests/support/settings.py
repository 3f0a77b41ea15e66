"""Values the tests' settings share: a JWT secret long enough for HS256, and
dummy AWS credentials (never real ones)."""

TEST_SECRET = "test-secret-that-is-long-enough-for-hs256-0123456789"

DUMMY_AWS = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_DEFAULT_REGION": "us-east-1",
}
# What a Lambda function's environment holds: temporary credentials.
DUMMY_AWS_SESSION = DUMMY_AWS | {"AWS_SESSION_TOKEN": "testing"}
