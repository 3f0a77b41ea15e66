"""bench/cost.py: the cost formula behaves as docs/deploy.md describes."""

from __future__ import annotations

import dataclasses
import importlib.util
import sys

import pytest

from tests.support import ROOT


@pytest.fixture(scope="module")
def cost():
    spec = importlib.util.spec_from_file_location("cost", ROOT / "bench" / "cost.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules["cost"] = module  # dataclasses look their module up while building
    spec.loader.exec_module(module)
    yield module
    del sys.modules["cost"]


def test_bytes_leaving_aws_are_priced_per_recipient(cost):
    w = cost.Workload(recipients=10, message_bytes=300)
    line = cost.per_million_messages(w)["data_transfer_out"]
    assert line == pytest.approx(1e6 * 300 * 10 / 1e9 * cost.PRICES["transfer_out_per_gb"])
    doubled = cost.per_million_messages(dataclasses.replace(w, recipients=20))
    assert doubled["data_transfer_out"] == pytest.approx(2 * line)


def test_fanout_cost_follows_cpu_per_delivery_and_the_scaling_target(cost):
    w = cost.Workload(recipients=1, cpu_per_ingest_s=0, cpu_per_delivery_s=1e-3, target_cpu=0.5)
    task_hour = (
        w.task_vcpu * cost.PRICES["fargate_arm_per_vcpu_hour"]
        + w.task_memory_gb * cost.PRICES["fargate_arm_per_gb_hour"]
    )
    expected = 1e6 * 1e-3 / (w.task_vcpu * 0.5) / 3600 * task_hour
    assert cost.per_million_messages(w)["fanout_fargate"] == pytest.approx(expected)


def test_fixed_costs_do_not_depend_on_messages_and_include_your_databases(cost):
    fixed = cost.fixed_per_month(cost.Workload(redis_per_month=12.5, mongodb_per_month=57))
    assert fixed["redis"] == 12.5 and fixed["mongodb"] == 57
    assert fixed["alb_hours"] == pytest.approx(730 * cost.PRICES["alb_per_hour"])


def test_the_script_prints_both_tables(cost, capsys):
    cost.main(["--recipients", "25"])
    out = capsys.readouterr().out
    assert "Per 1,000,000 messages (USD)" in out and "Fixed per month (USD)" in out
