"""What AuroraChat costs on AWS per million messages, and what it costs to keep running.

    python bench/cost.py                       # the defaults below
    python bench/cost.py --recipients 50 --message-bytes 600 --connections 20000

Every price is a list price for us-east-1, on-demand, without free tiers or
savings plans, with the page it was read from and the date of that page. The
official AWS pricing pages render their tables client-side, so the stored
copies we could search did not show the figures; apart from the HTTP API
price (found in an AWS whitepaper) the sources below are third-party pages
that quote them. Check them against the AWS pricing pages
for your region before you budget. Redis (ElastiCache) and MongoDB (Atlas or
DocumentDB) are sized by you: pass their monthly price; they are not guessed.

The model, per message:
- the fan-out tier (Fargate) spends CPU receiving it and writing it to each
  recipient: task-seconds = (cpu_ingest + recipients * cpu_delivery) /
  (task_vcpu * target_cpu), priced per task-second;
- the load balancer processes its bytes: one LCU-hour per GB per hour, so
  $ per GB processed = the LCU-hour price;
- the bytes to each recipient leave AWS (data transfer out);
- the drain Lambda stores it: duration per message * memory, priced per GB-s
  (its one invocation a minute is a fixed cost below);
- REST calls per message (history, attachments) go through the HTTP API and a
  Lambda each.
Fixed monthly: the load balancer hour, the minimum fan-out tasks, the LCUs for
open WebSockets (3,000 active connections per LCU), the drain's schedule.
The load balancer bills only the largest LCU dimension each hour; adding the
bytes and the connections dimensions, as here, gives an upper bound.
"""

from __future__ import annotations

import argparse
from dataclasses import asdict, dataclass

HOURS_PER_MONTH = 730

# --- List prices (USD, us-east-1, on-demand) ----------------------------------
PRICES = {
    # Lambda, arm64. Source: git.mcrn.ar/mariano/lambda_local_runner,
    # docs/lambdas-md/lambda-13-cost.md (2026-05-11), quoting aws.amazon.com/lambda/pricing;
    # the same arm64 rate is in artillery's lib/platform/aws-lambda/prices.js.
    "lambda_per_request": 0.20 / 1e6,
    "lambda_arm64_per_gb_second": 0.0000133334,
    # API Gateway HTTP API, first 300 M requests a month ($0.90 after). Source: AWS's
    # own docs, "Best Practices for Designing Amazon API Gateway Private APIs and
    # Private Integration", Cost optimization, Table 4 (us-east-1), read 2026-11-25 at
    # docs.aws.amazon.com/whitepapers/latest/best-practices-api-gateway-private-apis-integration/
    # cost-optimization.html; also apigatewaycost.com/aws (2026).
    "http_api_per_request": 1.00 / 1e6,
    # Data transfer out to the internet, first tiers. Source: apigatewaycost.com/aws (2026).
    "transfer_out_per_gb": 0.09,
    # Fargate, Linux/ARM. Source: vantage.sh/blog/fargate-pricing (us-east-1 table,
    # read 2026), quoting aws.amazon.com/fargate/pricing.
    "fargate_arm_per_vcpu_hour": 0.03238,
    "fargate_arm_per_gb_hour": 0.00356,
    # Application Load Balancer. Source: cloud-horizons.com/blog/alb-the-line-item-nobody-watches
    # (2026-05-08): $0.0225 per ALB-hour, $0.008 per LCU-hour; an LCU is 25 new
    # connections/s, 3,000 active connections/min, 1 GB/h processed, 1,000 rule evaluations/s.
    "alb_per_hour": 0.0225,
    "alb_per_lcu_hour": 0.008,
}
ALB_ACTIVE_CONNECTIONS_PER_LCU = 3000


@dataclass(frozen=True)
class Workload:
    recipients: float = 10  # sockets each message is written to (room size online)
    message_bytes: int = 300  # the broadcast frame on the wire
    connections: int = 5000  # WebSockets open on average
    rest_calls_per_message: float = 0.05  # history/attachment calls per message sent
    # Measured on this project's machine (docs/benchmarks.md, MACHINE-NOTES):
    # ~10.6 us of fan-out process CPU per delivery; receiving + Lua script ~50 us.
    cpu_per_delivery_s: float = 10.6e-6
    cpu_per_ingest_s: float = 50e-6
    # insert_many of 500 stored 24-30k docs/s on SecantusDB here; a managed
    # MongoDB over the network is slower: 0.2 ms per message is assumed.
    drain_ms_per_message: float = 0.2
    drain_memory_gb: float = 0.5
    rest_ms_per_call: float = 30
    rest_memory_gb: float = 0.5
    # deploy/fanout.yaml: 0.5 vCPU, 1 GB per task, scaled to 60 % CPU, 2 tasks at least.
    task_vcpu: float = 0.5
    task_memory_gb: float = 1.0
    target_cpu: float = 0.60
    min_tasks: int = 2
    drain_runs_per_month: int = 60 * 24 * 30  # rate(1 minute)
    drain_idle_run_ms: float = 1100  # one blocking read on an idle stream
    redis_per_month: float = 0.0  # your ElastiCache node(s)
    mongodb_per_month: float = 0.0  # your Atlas / DocumentDB cluster


def per_million_messages(w: Workload, prices: dict[str, float] = PRICES) -> dict[str, float]:
    """USD per 1,000,000 messages sent, by line item."""
    n = 1e6
    task_hour = (
        w.task_vcpu * prices["fargate_arm_per_vcpu_hour"]
        + w.task_memory_gb * prices["fargate_arm_per_gb_hour"]
    )
    task_seconds = n * (w.cpu_per_ingest_s + w.recipients * w.cpu_per_delivery_s)
    task_seconds /= w.task_vcpu * w.target_cpu
    wire_gb = n * w.message_bytes * (1 + w.recipients) / 1e9
    out_gb = n * w.message_bytes * w.recipients / 1e9
    rest_calls = n * w.rest_calls_per_message
    return {
        "fanout_fargate": task_seconds / 3600 * task_hour,
        "alb_processed_bytes": wire_gb * prices["alb_per_lcu_hour"],
        "data_transfer_out": out_gb * prices["transfer_out_per_gb"],
        "drain_lambda": n * w.drain_ms_per_message / 1000 * w.drain_memory_gb
        * prices["lambda_arm64_per_gb_second"],
        "rest_http_api": rest_calls * prices["http_api_per_request"],
        "rest_lambda": rest_calls
        * (
            prices["lambda_per_request"]
            + w.rest_ms_per_call / 1000 * w.rest_memory_gb * prices["lambda_arm64_per_gb_second"]
        ),
    }  # fmt: skip


def fixed_per_month(w: Workload, prices: dict[str, float] = PRICES) -> dict[str, float]:
    """USD a month whatever the traffic (with `connections` sockets open)."""
    task_hour = (
        w.task_vcpu * prices["fargate_arm_per_vcpu_hour"]
        + w.task_memory_gb * prices["fargate_arm_per_gb_hour"]
    )
    return {
        "alb_hours": HOURS_PER_MONTH * prices["alb_per_hour"],
        "alb_open_connections": HOURS_PER_MONTH * prices["alb_per_lcu_hour"]
        * w.connections / ALB_ACTIVE_CONNECTIONS_PER_LCU,
        "fanout_min_tasks": HOURS_PER_MONTH * w.min_tasks * task_hour,
        "drain_schedule": w.drain_runs_per_month
        * (
            prices["lambda_per_request"]
            + w.drain_idle_run_ms / 1000 * w.drain_memory_gb * prices["lambda_arm64_per_gb_second"]
        ),
        "redis": w.redis_per_month,
        "mongodb": w.mongodb_per_month,
    }  # fmt: skip


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    defaults = Workload()
    for name, value in asdict(defaults).items():
        parser.add_argument(f"--{name.replace('_', '-')}", type=type(value), default=value)
    w = Workload(**vars(parser.parse_args(argv)))
    variable = per_million_messages(w)
    fixed = fixed_per_month(w)
    print(f"Workload: {w}\n")
    print("Per 1,000,000 messages (USD)")
    for item, usd in variable.items():
        print(f"  {item:<22} {usd:>10.4f}")
    print(f"  {'total':<22} {sum(variable.values()):>10.4f}\n")
    print("Fixed per month (USD)")
    for item, usd in fixed.items():
        print(f"  {item:<22} {usd:>10.2f}")
    print(f"  {'total':<22} {sum(fixed.values()):>10.2f}")
    if not (w.redis_per_month and w.mongodb_per_month):
        print("  (Redis and MongoDB not included: pass --redis-per-month / --mongodb-per-month)")


if __name__ == "__main__":
    main()
