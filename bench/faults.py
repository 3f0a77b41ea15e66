"""The fault tests of tests/resilience/ at full scale: MongoDB down for 30 s,
1,000 connections opened at once, a replica restarted under 1,000 clients.
Each prints what it measured (times, messages lost, upgrades answered 503)
and fails if the property breaks: every acknowledged message stored exactly
once, every live client got it or recovered it by resume.

    python bench/faults.py [--mongo-outage 30] [--connections 1000] [--restart-clients 1000]
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--mongo-outage", type=float, default=30.0, help="seconds")
    parser.add_argument("--connections", type=int, default=1000, help="opened at once")
    parser.add_argument("--restart-clients", type=int, default=1000)
    parser.add_argument("--admissions", type=int, default=250, help="per second per replica")
    parser.add_argument("-k", default="", help="only the tests whose name matches (pytest -k)")
    args = parser.parse_args()
    env = os.environ | {
        "FAULTS_MONGO_OUTAGE_SECONDS": str(args.mongo_outage),
        "FAULTS_CONNECTIONS": str(args.connections),
        "FAULTS_RESTART_CLIENTS": str(args.restart_clients),
        "FAULTS_ADMISSIONS_PER_SECOND": str(args.admissions),
    }
    command = [sys.executable, "-m", "pytest", "tests/resilience/test_replica_faults.py",
               "tests/resilience/test_storage_faults.py", "-s", "-q", "-p", "no:cacheprovider",
               "--timeout", "600"]  # fmt: skip
    if args.k:
        command += ["-k", args.k]
    sys.exit(subprocess.run(command, cwd=ROOT, env=env, check=False).returncode)


if __name__ == "__main__":
    main()
