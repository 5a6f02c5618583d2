"""`strata bench`: the scenario registry, and a quick run of the ledger scenario that proves it
works end to end (pgbench side by side, sealing under load, verification). Numbers from a
quick run mean little, so only their presence and sanity are checked: benchmarks are not
timed tests."""

from __future__ import annotations

import json

from conftest import run_cli
from strata.bench import SCENARIOS, Metric, load_scenarios, missed_goals
from strata.commands.bench import format_value


def test_scenarios_register_themselves():
    load_scenarios()
    assert "ledger" in SCENARIOS and SCENARIOS["ledger"].summary


def test_metric_goals():
    assert Metric("r", 0.8, goal=">= 0.75").met is True
    assert Metric("r", 0.7, goal=">= 0.75").met is False
    assert Metric("lag", 6.0, "s", "<= 5").met is False
    assert Metric("info", 1.0).met is None and Metric("r", None, goal=">= 1").met is None


def test_the_table_prints_counts_whole_and_measures_to_two_places():
    assert [format_value(m) for m in (Metric("orders", 100000, "orders"), Metric("round trip", 37, "µs"),
                              Metric("verify", 250000, "events/s"), Metric("ratio", 5.4132, "×"),
                              Metric("lag", 0.5, "s"), Metric("none", None))] == [
        "100,000 orders", "37 µs", "250,000 events/s", "5.41 ×", "0.50 s", "n/a"]


def test_missed_goals_name_each_scenario_once():
    results = {"ledger": [Metric("commit to seal", 6.0, "s", "<= 5"), Metric("verify", 2e5, goal=">= 100000")],
               "orders": [Metric("orders: cancel order, Strata ÷ ORM", 4.4, goal=">= 5.0")]}
    assert missed_goals(results) == ["ledger: commit to seal", "orders: cancel order, Strata ÷ ORM"]


def test_quick_ledger_bench_runs_and_reports_every_metric(admin_url):
    result = run_cli("bench", "--scenario", "ledger", "--quick", "--duration", "1", "--events", "5000", "--json",
                     url=admin_url, timeout=300)
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    metrics = {m["name"]: m for m in report["scenarios"]["ledger"]}
    for workload in ("mutation", "insert"):
        for tenants in ("hot tenant", "100 tenants"):
            ratio = metrics[f"{workload}, {tenants}: audited / plain"]["value"]
            assert 0 < ratio < 2, metrics
    assert metrics["mutation, hot tenant: audited / plain"]["goal"] == ">= 0.75"
    assert metrics["commit to seal, median"]["value"] is not None, "the writers' commits sealed blocks"
    verify = metrics["strata audit verify"]
    assert verify["value"] > 0 and verify["goal"] == ">= 100000"
    assert "events in" in verify["detail"] and report["errors"] == {}
    assert "strata: running scenario ledger" in result.stderr
