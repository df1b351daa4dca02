"""The algorithm catalog in ``docs/algorithms.md``, generated from the code.

Each algorithm's module docstring (which cites its paper) and its declared
settings are the single source; ``python -m kubesweep.suggestion.catalog``
rewrites the page and a test fails when the committed page is stale, so the
documentation can never list a setting the code does not take, or a default it
does not use.
"""

from __future__ import annotations

import importlib
import sys
from pathlib import Path

from kubesweep.api import AlgorithmName, EarlyStoppingName
from kubesweep.suggestion import registry

MODULES: dict[AlgorithmName, str] = {
    AlgorithmName.GRID: "grid",
    AlgorithmName.RANDOM: "random_search",
    AlgorithmName.SOBOL: "sobol",
    AlgorithmName.BAYESIAN: "bayesian",
    AlgorithmName.TPE: "tpe",
    AlgorithmName.HYPERBAND: "hyperband",
    AlgorithmName.ASHA: "asha",
    AlgorithmName.BOHB: "bohb",
    AlgorithmName.CMAES: "cma_es",
    AlgorithmName.PBT: "pbt",
    AlgorithmName.NSGA2: "nsga2",
}
STOPPING_MODULES: dict[EarlyStoppingName, str] = {EarlyStoppingName.MEDIAN: "stopping.median"}

HEADER = """# Search algorithms and early stopping

Generated from the code by `python -m kubesweep.suggestion.catalog` (part of
`make crds`); do not edit. Set an algorithm with `spec.algorithm.name`, its seed
with `spec.algorithm.seed` and its settings with `spec.algorithm.settings`;
unknown or invalid settings are refused with a message naming the setting.
Multi-fidelity algorithms (hyperband, asha, bohb, pbt) need `spec.fidelity`; cmaes
searches float and int parameters only. With `trialTemplate.checkpoints`, a
promoted hyperband, asha or bohb trial resumes from the checkpoint of the trial it
was promoted from and trains only the missing epochs; pbt needs checkpoints, since
every step after the first resumes from one (see `docs/trial-jobs.md`).
"""

SEVERAL_OBJECTIVES = """
# Several objectives and constraints

With `spec.objectives` (two to four metrics) the result is a Pareto front rather
than one best trial; `docs/api.md` says how the front, its cap, the target and
the end reasons are defined. `nsga2` (evolutionary) and `tpe` (multi-objective
TPE: trials split by non-dominated rank, then by their share of their rank's
hypervolume) search several objectives; `random`, `sobol` and `grid` take them
because they never compare trials. The other
algorithms compare trials on one value and refuse `spec.objectives` at admission,
and the suggestion service answers 422 naming `objectives` if asked anyway.

The suggestion request then carries `objectives` (each one's direction) and, for
each finished trial, `values` (each objective's value). With `spec.constraints`
each finished trial also carries `feasible` and `violation` (how far its
constrained metrics lie outside their bounds, summed). Every algorithm sees
constraints the same way: an infeasible trial's value is ranked after every
feasible trial's, and among infeasible trials by how far they missed, bounded in
scale. `tpe` then puts infeasible trials in its bad group before any feasible
one, so its good density covers the feasible region, and `bayesian` models the
infeasible region as worse than any feasible point; in the tests both move to
the feasible region where, told nothing, they stay at the unconstrained optimum.
`nsga2` uses constrained domination instead (feasible first, then by
violation). Hypervolume, used by the tests and benchmarks of multi-objective
search, comes from the `moocore` library.
"""


def _doc(module: str) -> str:
    text = importlib.import_module(f"kubesweep.suggestion.{module}").__doc__ or ""
    return text.strip()


def _settings_table(name: AlgorithmName | EarlyStoppingName) -> str:
    declared = registry.declared_settings(name)
    if not declared:
        return "No settings.\n"
    rows = ["| setting | default | meaning |", "|---|---|---|"]
    for setting in declared:
        rows.append(f"| `{setting.name}` | `{setting.default!r}` | {setting.doc} |")
    return "\n".join(rows) + "\n"


def render() -> str:
    """The page's Markdown text."""
    parts = [HEADER]
    for name, module in MODULES.items():
        parts.append(f"\n## `{name}`\n\n{_doc(f'algorithms.{module}')}\n\n")
        parts.append(_settings_table(name))
    parts.append(SEVERAL_OBJECTIVES)
    parts.append("\n# Early stopping (`spec.earlyStopping`)\n")
    for rule, module in STOPPING_MODULES.items():
        parts.append(f"\n## `{rule}`\n\n{_doc(module)}\n\n")
        parts.append(_settings_table(rule))
    return "".join(parts)


def main() -> int:
    """Write the page into ``docs/algorithms.md`` (or the path given)."""
    target = Path(sys.argv[1] if len(sys.argv) > 1 else "docs/algorithms.md")
    target.write_text(render())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
