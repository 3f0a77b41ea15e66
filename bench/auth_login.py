"""Login latency through the real auth handler (API Gateway v2 events) at the
default bcrypt cost, against real Redis and SecantusDB started here: a
successful login, a wrong password, an unknown user (which must take as long
as a wrong password), and `GET /api/auth/me` (token check with revocation).

    .venv/bin/python bench/auth_login.py [--requests 200] [--cost 10]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def percentile(samples: list[float], q: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=200)
    parser.add_argument("--cost", type=int, default=10)
    args = parser.parse_args()

    from local.servers import start_mongo, start_redis

    with tempfile.TemporaryDirectory() as tmp:
        redis_server = start_redis(Path(tmp) / "redis")
        mongo_server = start_mongo(Path(tmp) / "mongo")
        os.environ.update(
            AURORA_ENV="local",
            REDIS_URL=redis_server.url,
            MONGO_URL=mongo_server.url,
            BCRYPT_ROUNDS=str(args.cost),
            POWERTOOLS_LOG_LEVEL="WARNING",
            POWERTOOLS_METRICS_NAMESPACE="AuroraChatBench",
            POWERTOOLS_METRICS_DISABLED="true",  # keep EMF lines out of the figures
            # Failures are spread over many source IPs below; the per-IP limit
            # would otherwise answer 429 (cheaply) instead of doing the work.
            LOGIN_FAILURES_PER_IP="100000000",
        )
        try:
            from local.runtime import LocalFunction
            from local.template import functions
            from tests.support.events import call, event

            (spec,) = [f for f in functions(ROOT / "template.yaml") if f.name == "AuthFunction"]
            fn = LocalFunction(spec, concurrency=1)
            creds = {"username": "bench-user", "password": "bench-password-1"}
            assert call(fn, event("register", "http-v2", body=creds))[0] == 200
            token = call(fn, event("login", "http-v2", body=creds))[1]["token"]

            cases = {
                "login ok": lambda i: event("login", "http-v2", body=creds),
                "login wrong password": lambda i: event(
                    "login",
                    "http-v2",
                    body={"username": "bench-user", "password": "wrong-password"},
                    ip=f"10.{i // 65536 % 256}.{i // 256 % 256}.{i % 256}",
                ),
                "login unknown user": lambda i: event(
                    "login",
                    "http-v2",
                    body={"username": f"nobody-{i}", "password": "wrong-password"},
                    ip=f"10.{i // 65536 % 256}.{i // 256 % 256}.{i % 256}",
                ),
                "me (verify + revocation check)": lambda i: event("me", "http-v2", token=token),
            }
            print(
                f"python {sys.version.split()[0]}, {os.cpu_count()} cores, "
                f"bcrypt cost {args.cost}, {args.requests} sequential requests per case, "
                "one warm container"
            )
            print(f"{'case':34} {'p50':>8} {'p99':>8} {'mean':>8}")
            for name, make in cases.items():
                call(fn, make(10**6))  # warm this path
                samples = []
                for i in range(args.requests):
                    sample = make(i)
                    started = time.perf_counter()
                    status = call(fn, sample)[0]
                    samples.append((time.perf_counter() - started) * 1000)
                    assert status in (200, 401), status
                p50, p99 = percentile(samples, 0.5), percentile(samples, 0.99)
                print(f"{name:34} {p50:6.1f}ms {p99:6.1f}ms {statistics.fmean(samples):6.1f}ms")
            fn.close()
        finally:
            redis_server.stop()
            mongo_server.stop()


if __name__ == "__main__":
    main()
