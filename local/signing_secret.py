"""The compose stack's JWT signing secret: made once, at random, into a file
the api and the fan-out read (`docker-compose.yml`), so a stack reachable by
others never signs with the public development secret."""

from __future__ import annotations

import argparse
import os
import secrets
from pathlib import Path

from aurora.secrets import check_secrets


def ensure_secret(path: Path, owner: int | None = None) -> bool:
    """Write a new random secret to `path` unless one is there already (a
    restart keeps everyone logged in). Readable by its owner only: `owner`
    (a uid) when the services run as another user than this one. True if made."""
    if path.exists() and path.read_text().strip():
        return False
    secret = secrets.token_urlsafe(48)  # 64 characters, 384 random bits
    check_secrets((secret,), str(path))
    partial = path.with_name(f".{path.name}.partial")
    partial.unlink(missing_ok=True)
    descriptor = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o400)
    with os.fdopen(descriptor, "w") as file:
        file.write(secret + "\n")
    if owner is not None:
        os.chown(partial, owner, owner)
    os.replace(partial, path)  # readers never see a half-written secret
    return True


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m local.signing_secret", description=__doc__)
    parser.add_argument("path", type=Path, help="the secret's file (kept if it exists)")
    parser.add_argument("--owner", type=int, help="uid that will read it")
    args = parser.parse_args(argv)
    made = ensure_secret(args.path, args.owner)
    print(f"{'made a new' if made else 'kept the'} signing secret in {args.path}")


if __name__ == "__main__":
    main()
