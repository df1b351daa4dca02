"""The scale benchmark's end checks, throughput and docs block, from made-up records.

The run itself takes an hour of pods; what it decides from its records (did
the sweep end well, how fast was it, what the docs say and where) is checked
here without a cluster.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from bench.operator import report, scale


def _trial(index: int, phase: str) -> dict[str, Any]:
    return {"metadata": {"name": f"scale-{index}"}, "status": {"phase": phase}}


def _experiment(succeeded: int, unavailable: int, created: int) -> dict[str, Any]:
    return {
        "status": {
            "conditions": [{"type": "Succeeded", "status": "True", "reason": "MaxTrialsReached"}],
            "trials": {
                "created": created,
                "completed": created,
                "succeeded": succeeded,
                "metricsUnavailable": unavailable,
            },
        }
    }


def test_a_sweep_that_ended_well_passes_every_check() -> None:
    trials = [_trial(i, "Succeeded") for i in range(9)] + [_trial(9, "MetricsUnavailable")]
    verdict = scale.verify(_experiment(9, 1, 10), trials, 10)
    assert verdict["passed"], verdict["checks"]
    assert verdict["trial_phases"] == {"Succeeded": 9, "MetricsUnavailable": 1}


def test_a_missing_trial_an_unfinished_one_or_wrong_counts_fail() -> None:
    nine = [_trial(i, "Succeeded") for i in range(9)]
    checks = scale.verify(_experiment(9, 0, 10), nine, 10)["checks"]
    assert not checks["exactly_n_trials"]
    assert not checks["names_are_0_to_n_minus_1"]
    running = [*nine, _trial(9, "Running")]
    checks = scale.verify(_experiment(10, 0, 10), running, 10)["checks"]
    assert not checks["all_finished"]
    assert not checks["status_counts_match_phases"]
    extra = [*nine, _trial(10, "Succeeded")]
    assert not scale.verify(_experiment(10, 0, 10), extra, 10)["checks"]["names_are_0_to_n_minus_1"]
    failed = _experiment(10, 0, 10)
    failed["status"]["conditions"] = [{"type": "Failed", "status": "True"}]
    done = [*nine, _trial(9, "Succeeded")]
    assert not scale.verify(failed, done, 10)["checks"]["experiment_succeeded"]


def test_steady_throughput_counts_between_ten_and_ninety_percent() -> None:
    rows = [{"t_s": 60.0 * i, "completed": c} for i, c in enumerate([0, 10, 50, 90, 100])]
    rates = scale.throughput(rows, 100, 240.0)
    assert rates["overall_per_min"] == 25.0
    assert rates["steady_per_min"] == 80 / 2


def _results(trials: int) -> dict[str, Any]:
    row = {
        "t_s": 30.0,
        "created": trials,
        "running": 0,
        "completed": trials,
        "jobs": 0,
        "pods": 0,
        "operator_writes": 7 * trials,
        "cluster_writes": 20 * trials,
        "operator_cpu_s": 12.0,
        "operator_rss_mib": 120.0,
        "load_average": 3.0,
        "etcd_db_bytes": 9e6,
        "etcd_db_in_use_bytes": 8e6,
    }
    return {
        "command": f'make bench-operator BENCH_ARGS="--only scale --trials {trials}"',
        "machine": {"date": "2026-12-06", "cpus": 2, "cpu_model": "x", "load_average_at_start": 2},
        "scale": {
            "trials": trials,
            "parallel": 30,
            "algorithm": {"name": "random", "seed": 1},
            "program": "print('loss=1')",
            "finished_workload_retention": "0s",
            "sample_every_s": 15.0,
            "outcome": "ended",
            "end_reason": "MaxTrialsReached",
            "elapsed_s": 30.0,
            "checks": {"exactly_n_trials": True},
            "passed": True,
            "trial_phases": {"Succeeded": trials},
            "throughput": {"overall_per_min": 2.0 * trials, "steady_per_min": float("nan")},
            "operator_writes": {"trials POST": trials},
            "operator_writes_total": 7 * trials,
            "experiment_writes": 10,
            "operator_writes_per_trial": 7.0,
            "operator_writes_per_trial_all_in": 7.1,
            "cluster_writes_per_trial": 20.0,
            "operator_cpu_s": 12.0,
            "operator_rss_mib": 120.0,
            "operator_peak_rss_mib": 130.0,
            "cpu": {"operator": {"cpu_s": 12.0, "cores": 0.4}},
            "largest_trial_bytes": 2000,
            "largest_experiment_bytes": 3000,
            "samples": [{**row, "t_s": 0.0, "completed": 0}, row],
            "load_average": 3.0,
        },
    }


def test_a_run_short_of_ten_thousand_says_so() -> None:
    assert "fewer than the 10,000" in report.render_scale(_results(3000))
    assert "fewer than" not in report.render_scale(_results(10_000))


def test_the_block_goes_at_the_end_of_the_operator_section_and_is_replaced(
    tmp_path: Path,
) -> None:
    docs = tmp_path / "benchmarks.md"
    docs.write_text("# B\n\n## Operator\n\nops\n\n### Notes\n\nkept\n\n## Next\n\nnext\n")
    report.write_scale(_results(3000), docs)
    first = docs.read_text()
    assert first.index("kept") < first.index(report.SCALE_BEGIN) < first.index("## Next")
    report.write_scale(_results(10_000), docs)
    second = docs.read_text()
    assert second.count(report.SCALE_BEGIN) == 1
    assert "fewer than" not in second
    assert second.endswith("## Next\n\nnext\n")
