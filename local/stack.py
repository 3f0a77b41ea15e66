"""`python -m local`: the whole AuroraChat stack on one machine.

Starts embedded Redis and MongoDB-protocol servers (unless REDIS_URL /
MONGO_URL are set), the fan-out container, and an HTTP front that serves
every API route of template.yaml by invoking the real handler with an API
Gateway HTTP API (2.0) event, runs Schedule events, and serves frontend/.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import logging
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from fanout.memory import jemalloc_env
from local.logs import configure as console_logs
from local.logs import readable_function_logs
from local.servers import (
    ManagedProcess,
    _spawn,
    start_mongo,
    start_redis,
    start_redis_cluster,
    start_s3,
    wait_for_port,
)
from local.template import functions as template_functions
from local.template import schedule_seconds

ROOT = Path(__file__).resolve().parent.parent
log = logging.getLogger("aurora.local")
SERVER_NAMES = {"redis": "Redis", "mongo": "MongoDB (SecantusDB)", "s3": "S3 (moto)"}


@dataclass
class StackConfig:
    host: str = "127.0.0.1"
    api_port: int = 4000
    ws_port: int = 8080
    data_dir: Path = ROOT / ".aurora"
    template: Path = ROOT / "template.yaml"
    frontend: Path = ROOT / "frontend"
    # Local speed-up: every Schedule event runs this often instead of its rate().
    schedule_seconds: float = 2.0
    log_level: str = "INFO"
    # A Redis Cluster of 3 masters and 3 replicas instead of one redis-server.
    redis_cluster: bool = False
    env: dict[str, str] = field(default_factory=dict)


def parse_args(argv: list[str] | None) -> StackConfig:
    env = os.environ
    parser = argparse.ArgumentParser(prog="python -m local", description=__doc__)
    parser.add_argument("--host", default=env.get("AURORA_HOST", "127.0.0.1"))
    parser.add_argument("--api-port", type=int, default=int(env.get("AURORA_API_PORT", 4000)))
    parser.add_argument("--ws-port", type=int, default=int(env.get("AURORA_WS_PORT", 8080)))
    parser.add_argument(
        "--data-dir", type=Path, default=Path(env.get("AURORA_DATA_DIR", ROOT / ".aurora"))
    )
    parser.add_argument(
        "--schedule-seconds",
        type=float,
        default=float(env.get("AURORA_LOCAL_SCHEDULE_SECONDS", 2.0)),
        help="run each Schedule event this often (local speed-up of its rate())",
    )
    parser.add_argument(
        "--log-level",
        default=env.get("AURORA_LOG_LEVEL", "INFO"),
        choices=["DEBUG", "INFO", "WARNING", "ERROR"],
        type=str.upper,
        help="the console's level (DEBUG shows health checks too)",
    )
    parser.add_argument(
        "--redis-cluster",
        action="store_true",
        default=env.get("AURORA_REDIS_CLUSTER", "") == "1",
        help="run on a Redis Cluster (3 masters, 3 replicas; its data lasts one run)",
    )
    args = parser.parse_args(argv)
    return StackConfig(
        redis_cluster=args.redis_cluster,
        host=args.host,
        api_port=args.api_port,
        ws_port=args.ws_port,
        data_dir=args.data_dir.resolve(),
        schedule_seconds=args.schedule_seconds,
        log_level=args.log_level,
    )


# The ports the stack binds, what each is for, and how to pick another one.
PORTS = {
    "api_port": ("REST API and frontend", "--api-port", "AURORA_API_PORT"),
    "ws_port": ("WebSocket fan-out", "--ws-port", "AURORA_WS_PORT"),
}


def taken_ports(config: StackConfig) -> list[str]:
    """Why the stack cannot bind its ports, one sentence per port (empty: free).
    Checked before anything starts, so a taken port starts nothing."""
    wanted = ["api_port"] if os.environ.get("FANOUT_URL") else ["api_port", "ws_port"]
    problems = []
    for name in wanted:
        port = getattr(config, name)
        what, option, variable = PORTS[name]
        with socket.socket() as sock:
            # As uvicorn and websockets bind: a port left in TIME_WAIT is free.
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                sock.bind((config.host, port))
            except OSError as exc:
                problems.append(
                    f"port {port} ({what}) is taken on {config.host} ({exc.strerror}): stop"
                    f" what uses it, or pick another port with {option} PORT or {variable}=PORT"
                )
    if len(wanted) == 2 and config.api_port == config.ws_port:
        problems.append(f"--api-port and --ws-port are both {config.api_port}: pick two ports")
    return problems


class LocalStack:
    """Starts and stops everything; stops only the processes it started."""

    def __init__(self, config: StackConfig) -> None:
        self.config = config
        self.children: list[ManagedProcess] = []
        self.functions: list = []

    def start_backends(self) -> dict[str, str]:
        data = self.config.data_dir
        redis_url = os.environ.get("REDIS_URL")
        if not redis_url and self.config.redis_cluster:
            # Ephemeral ports: each run makes a new cluster, so no old one lingers.
            shutil.rmtree(data / "redis-cluster", ignore_errors=True)
            cluster = start_redis_cluster(data / "redis-cluster")
            self.children.extend(cluster.nodes)
            redis_url = cluster.url
        elif not redis_url:
            redis = start_redis(data / "redis")
            self.children.append(redis)
            redis_url = redis.url
        mongo_url = os.environ.get("MONGO_URL")
        if not mongo_url:
            mongo = start_mongo(data / "mongo")
            self.children.append(mongo)
            mongo_url = mongo.url
        return {"REDIS_URL": redis_url, "MONGO_URL": mongo_url, **self.start_s3()}

    def start_s3(self) -> dict[str, str]:
        """S3 for attachments: LocalStack (or any S3) if AWS_ENDPOINT_URL[_S3] is
        set, else moto's server, in memory. Same boto3 code path as on AWS."""
        endpoint = os.environ.get("AWS_ENDPOINT_URL_S3") or os.environ.get("AWS_ENDPOINT_URL")
        if not endpoint:
            s3 = start_s3(self.config.data_dir / "s3")
            self.children.append(s3)
            endpoint = s3.url
        env = {
            "AWS_ENDPOINT_URL_S3": endpoint,
            # Dummy credentials: the local endpoint accepts any.
            "AWS_ACCESS_KEY_ID": os.environ.get("AWS_ACCESS_KEY_ID") or "local",
            "AWS_SECRET_ACCESS_KEY": os.environ.get("AWS_SECRET_ACCESS_KEY") or "local",
            "AWS_DEFAULT_REGION": os.environ.get("AWS_DEFAULT_REGION") or "us-east-1",
            "ATTACHMENTS_BUCKET": os.environ.get("ATTACHMENTS_BUCKET") or "aurora-attachments",
        }
        from local.buckets import ensure_bucket

        ensure_bucket(env)
        return env

    def environment(self, backends: dict[str, str]) -> dict[str, str]:
        """What every handler and the fan-out container see (explicit env wins)."""
        from aurora.settings import LOCAL_DEV_SECRET

        def default(name: str, value: str) -> str:
            return os.environ.get(name) or value

        return {
            "AURORA_ENV": "local",
            "JWT_SECRET": default("JWT_SECRET", LOCAL_DEV_SECRET),
            "POWERTOOLS_SERVICE_NAME": default("POWERTOOLS_SERVICE_NAME", "aurorachat"),
            "POWERTOOLS_METRICS_NAMESPACE": default("POWERTOOLS_METRICS_NAMESPACE", "AuroraChat"),
            "POWERTOOLS_LOG_LEVEL": default("POWERTOOLS_LOG_LEVEL", "INFO"),
            # No CloudWatch here: keep EMF metric blobs out of the console.
            "POWERTOOLS_METRICS_DISABLED": default("POWERTOOLS_METRICS_DISABLED", "true"),
            **backends,
        }

    def start_fanout(self, env: dict[str, str]) -> ManagedProcess:
        # `env` carries the local S3's endpoint, dummy keys and bucket: the
        # fan-out checks message attachments there (HEAD), as it would on AWS.
        child_env = {
            # On jemalloc where the machine has it, as the image runs it; what
            # the caller's environment says about the allocator comes first.
            **jemalloc_env(),
            **os.environ,
            **env,
            "FANOUT_HOST": self.config.host,
            "FANOUT_PORT": str(self.config.ws_port),
            # Readable lines beside the stack's own (JSON is for log services).
            "FANOUT_CONSOLE_LOGS": "true",
        }
        log_path = self.config.data_dir / "fanout.log"
        process = _spawn("fanout", [sys.executable, "-m", "fanout"], log_path, env=child_env)
        wait_for_port(self.config.ws_port, process)
        fanout = ManagedProcess(
            "fanout", process, f"ws://{self.config.host}:{self.config.ws_port}", log_path
        )
        self.children.append(fanout)
        return fanout

    def stop(self) -> None:
        """Stops what it started, one line per part: the fan-out and the
        functions first (they use the servers), then the servers together."""
        started = time.monotonic()
        anything = bool(self.functions or self.children)
        servers = [c for c in self.children if c.name != "fanout"]
        for child in self.children:
            if child.name == "fanout":
                log.info("stopping the fan-out (pid %d)", child.pid)
                child.stop()
        if self.functions:
            log.info("stopping the functions (a drain run ends after its current read)")
        for fn in self.functions:
            fn.close()
        self.functions = []
        from aurora.backends import close_database_clients

        close_database_clients()
        for child in servers:
            log.info("stopping %s (pid %d)", SERVER_NAMES.get(child.name, child.name), child.pid)
            child.terminate()
        for child in servers:
            child.wait()
        self.children.clear()
        if anything:
            log.info("stopped in %.1f s", time.monotonic() - started)

    def urls(self, env: dict[str, str]) -> dict[str, Any]:
        host = self.config.host
        return {
            "api_url": f"http://{host}:{self.config.api_port}",
            "ws_url": os.environ.get("FANOUT_URL") or f"ws://{host}:{self.config.ws_port}",
            "frontend_url": f"http://{host}:{self.config.api_port}/",
            "redis_url": env["REDIS_URL"],
            "mongo_url": env["MONGO_URL"],
            "s3_url": env.get("AWS_ENDPOINT_URL_S3", ""),
            # Where presigned URLs send the browser (docker compose: the host's port).
            "s3_public_url": os.environ.get("S3_PUBLIC_ENDPOINT_URL")
            or env.get("AWS_ENDPOINT_URL_S3", ""),
            "pids": {child.name: child.pid for child in self.children} | {"local": os.getpid()},
        }

    async def run_schedules(self) -> None:
        from local.runtime import LocalFunction

        async def every(fn: LocalFunction, rule: str) -> None:
            event = {
                "version": "0",
                "source": "aws.events",
                "detail-type": "Scheduled Event",
                "resources": [f"local:schedule/{fn.function.name}"],
                "detail": {},
            }
            log.info(
                "%s: %s runs every %.1f s locally",
                fn.function.name,
                rule,
                self.config.schedule_seconds,
            )
            while True:
                started = time.monotonic()
                try:
                    # Awaited: a run never starts while the previous one is going.
                    await fn.ainvoke(
                        event | {"time": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
                    )
                except Exception:
                    log.exception(
                        "%s: scheduled run failed; retrying on the next tick", fn.function.name
                    )
                await asyncio.sleep(
                    max(0.0, self.config.schedule_seconds - (time.monotonic() - started))
                )

        tasks = []
        for fn in self.functions:
            for rule in fn.function.schedules:
                schedule_seconds(rule)  # refuse expressions we cannot emulate
                tasks.append(asyncio.create_task(every(fn, rule)))
        try:
            await asyncio.gather(*tasks)
        finally:
            for task in tasks:
                task.cancel()


async def serve(stack: LocalStack, urls: dict[str, Any], on_started: Any = None) -> None:
    import uvicorn

    from local.gateway import build_app

    app = build_app(stack.functions, stack.config.frontend, urls)
    server = uvicorn.Server(
        uvicorn.Config(
            app,
            host=stack.config.host,
            port=stack.config.api_port,
            log_level="warning",
            lifespan="off",
            # Nothing proxies the local stack: X-Forwarded-For is whatever the
            # client wrote, and the throttles key on the client's address.
            proxy_headers=False,
            # Browsers keep idle connections open: don't wait for them on Ctrl-C.
            timeout_graceful_shutdown=1,
        )
    )

    async def announce() -> None:
        while not server.started:
            await asyncio.sleep(0.05)
        if on_started is not None:
            on_started()

    schedules = asyncio.create_task(stack.run_schedules())
    announcing = asyncio.create_task(announce())
    try:
        await server.serve()
    finally:
        log.info("stopping the HTTP front and the schedules")
        for task in (announcing, schedules):
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task


def _stop_on_signal(signum: int, _frame: object) -> None:
    # uvicorn re-raises the signal after its own shutdown; turning it into
    # SystemExit lets `finally` stop every child we started.
    raise SystemExit(128 + signum)


def banner(urls: dict[str, Any], config: StackConfig) -> str:
    return (
        "\nAuroraChat is running locally (Ctrl-C stops everything):\n"
        f"  chat in your browser  {urls['frontend_url']}\n"
        f"  REST API              {urls['api_url']}  (docs: {urls['api_url']}/api/docs)\n"
        f"  WebSocket             {urls['ws_url']}\n"
        f"  Redis                 {urls['redis_url']}\n"
        f"  MongoDB               {urls['mongo_url']}\n"
        f"  S3 (attachments)      {urls['s3_public_url']}\n"
        f"  (also in {config.data_dir / 'local.json'}; servers' logs beside it)\n"
        "  Locked out after failed logins? `python -m local.throttles clear`\n"
    )


def main(argv: list[str] | None = None) -> None:
    config = parse_args(argv)
    console_logs(config.log_level)
    busy = taken_ports(config)
    if busy:
        for problem in busy:
            print(f"local stack not started: {problem}", file=sys.stderr)
        sys.exit(1)
    for sig in (signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, _stop_on_signal)
    config.data_dir.mkdir(parents=True, exist_ok=True)
    local_json = config.data_dir / "local.json"
    written = False
    stack = LocalStack(config)

    def started(urls: dict[str, Any]) -> None:
        nonlocal written
        # Whole or not at all: scripts and tests read it as soon as it exists.
        partial = local_json.with_suffix(".json.tmp")
        partial.write_text(json.dumps(urls, indent=2) + "\n")
        partial.replace(local_json)
        written = True
        print(banner(urls, config), flush=True)

    try:
        env = stack.environment(stack.start_backends())
        os.environ.update(env)  # the handlers run in this process and read it
        # FANOUT_URL: a fan-out tier already running elsewhere (docker compose).
        if not os.environ.get("FANOUT_URL"):
            stack.start_fanout(env)
        from local.runtime import LocalFunction

        stack.functions = [
            LocalFunction(fn, after_load=readable_function_logs)
            for fn in template_functions(config.template)
        ]
        urls = stack.urls(env)
        asyncio.run(serve(stack, urls, on_started=lambda: started(urls)))
    except KeyboardInterrupt:
        pass
    except (RuntimeError, TimeoutError, OSError, subprocess.SubprocessError) as exc:
        print(f"local stack failed to start: {exc}", file=sys.stderr)
        sys.exit(1)
    finally:
        # Scripts read local.json to find a running stack: never leave a stale one.
        if written:
            local_json.unlink(missing_ok=True)
        stack.stop()
