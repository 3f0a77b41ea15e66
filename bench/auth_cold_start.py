"""Cold-start proxy for each Lambda handler: in a fresh interpreter, the time
to import the handler module, its first invocation and a warm one, against
real Redis and SecantusDB started here. Compared with `import fastapi, mangum`
alone in a fresh interpreter.

    .venv/bin/python bench/auth_cold_start.py [--runs 5]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

BASELINE = """
import time
t0, c0 = time.perf_counter(), time.process_time()
import fastapi, mangum
print(json.dumps({"import_ms": (time.perf_counter() - t0) * 1000,
                  "import_cpu_ms": (time.process_time() - c0) * 1000}))
"""

# Run in a fresh interpreter: import the handler module as Lambda does, then
# invoke it once (cold) and five more times (warm).
CHILD = """
import importlib.util, time, uuid
t0, c0 = time.perf_counter(), time.process_time()
spec = importlib.util.spec_from_file_location("handler_module", HANDLER_PATH)
module = importlib.util.module_from_spec(spec)
spec.loader.exec_module(module)
import_ms = (time.perf_counter() - t0) * 1000
import_cpu_ms = (time.process_time() - c0) * 1000

class Context:
    function_name = "bench"
    function_version = "$LATEST"
    invoked_function_arn = "arn:aws:lambda:local:000000000000:function:bench"
    memory_limit_in_mb = 512
    log_group_name = "/aws/lambda/bench"
    log_stream_name = "bench"
    def __init__(self):
        self.aws_request_id = str(uuid.uuid4())
    def get_remaining_time_in_millis(self):
        return 60_000

def invoke():
    t = time.perf_counter()
    result = module.handler(json.loads(EVENT), Context())
    assert not isinstance(result, dict) or result.get("statusCode", 200) < 400, result
    return (time.perf_counter() - t) * 1000

first_ms = invoke()
if ONLY_ONCE:
    raise SystemExit(print(json.dumps({})))
warm_ms = sorted(invoke() for _ in range(5))[2]
print(json.dumps({"import_ms": import_ms, "import_cpu_ms": import_cpu_ms,
                  "first_ms": first_ms, "warm_ms": warm_ms}))
"""


def run_child(code: str, env: dict[str, str], **values: object) -> dict:
    values.setdefault("ONLY_ONCE", False)
    # cryptography is installed here only for moto (tests); the layer does not
    # ship it, and PyJWT imports it when present: keep it out, as in Lambda.
    prelude = "import json, sys\nsys.modules['cryptography'] = None\n" + "".join(
        f"{k} = {v!r}\n" for k, v in values.items()
    )
    out = subprocess.run(
        [sys.executable, "-c", prelude + code],
        env=env,
        cwd=ROOT,
        capture_output=True,
        text=True,
    )
    if out.returncode:
        raise SystemExit(out.stderr[-3000:])
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()

    from local.servers import start_mongo, start_redis

    with tempfile.TemporaryDirectory() as tmp:
        redis_server = start_redis(Path(tmp) / "redis")
        mongo_server = start_mongo(Path(tmp) / "mongo")
        try:
            env = os.environ | {
                "AURORA_ENV": "local",
                "REDIS_URL": redis_server.url,
                "MONGO_URL": mongo_server.url,
                "POWERTOOLS_METRICS_NAMESPACE": "AuroraChatBench",
                "POWERTOOLS_LOG_LEVEL": "WARNING",
                "DRAIN_BLOCK_MS": "100",
                # The stand-in context never runs out of time: stop when the stream is empty.
                "DRAIN_EXIT_WHEN_IDLE": "true",
                "LOGIN_FAILURES_PER_IP": "1000000",
            }
            creds = {"username": "bench-user", "password": "bench-password-1"}
            register = json.loads((ROOT / "events/register.http-v2.json").read_text())
            register["body"] = json.dumps(creds)
            login = json.loads((ROOT / "events/login.http-v2.json").read_text())
            login["body"] = json.dumps(creds)
            handlers = {
                "auth (login, bcrypt cost 10)": ("functions/auth/app.py", login),
                "ingest (scheduled drain, idle)": (
                    "functions/ingest/app.py",
                    json.loads((ROOT / "events/drain.schedule.json").read_text()),
                ),
            }
            # The user the login benchmark logs in as.
            run_child(
                CHILD,
                env,
                HANDLER_PATH="functions/auth/app.py",
                EVENT=json.dumps(register),
                ONLY_ONCE=True,
            )

            print(
                f"python {sys.version.split()[0]}, {os.cpu_count()} cores, medians of {args.runs}"
            )
            print("import: wall / CPU ms; adds: the handler's import minus `import fastapi,")
            print("mangum` in the fresh interpreter run just before it (median of the differences)")
            print(f"{'handler':32} {'import':>11} {'adds':>11} {'first':>7} {'warm':>7}")
            rows = {"import fastapi, mangum": (None, None), **handlers}
            for name, (path, event) in rows.items():
                runs, adds, adds_cpu = [], [], []
                for _ in range(args.runs):
                    base = run_child(BASELINE, env)
                    if path is None:
                        runs.append(base)
                        continue
                    run = run_child(CHILD, env, HANDLER_PATH=path, EVENT=json.dumps(event))
                    runs.append(run)
                    adds.append(run["import_ms"] - base["import_ms"])
                    adds_cpu.append(run["import_cpu_ms"] - base["import_cpu_ms"])

                def median(key: str, runs: list[dict] = runs) -> float:
                    return statistics.median(r[key] for r in runs)

                imported = f"{median('import_ms'):4.0f} / {median('import_cpu_ms'):4.0f}"
                if path is None:
                    print(f"{name:32} {imported:>11}")
                    continue
                added = f"{statistics.median(adds):4.0f} / {statistics.median(adds_cpu):4.0f}"
                first, warm = median("first_ms"), median("warm_ms")
                print(f"{name:32} {imported:>11} {added:>11} {first:7.0f} {warm:7.0f}")
        finally:
            redis_server.stop()
            mongo_server.stop()


if __name__ == "__main__":
    main()
