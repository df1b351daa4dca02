"""The shared sampler cases' reproducibility study, repeated in other processes.

Nothing an algorithm does may depend on the order of a set or a dict of strings,
which changes with the hash seed from one process to the next (Optuna checks its
samplers the same way). Two child processes with different hash seeds run the
study of :func:`tests.suggestion.test_sampler_cases.sequence` for every available
algorithm, side by side, and must agree with this process. One test for all
algorithms, so that the children start once.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from kubesweep.api.experiment import AlgorithmName
from kubesweep.suggestion import registry
from tests.suggestion.helpers import ALL_NAMES
from tests.suggestion.test_sampler_cases import sequence, total

#: Runs the reproducibility study of every algorithm named on the command line.
CHILD = """
import json, sys
from kubesweep.api.experiment import AlgorithmName
from tests.suggestion.test_sampler_cases import sequence, total
print(json.dumps({n: sequence(AlgorithmName(n), total, seed=1) for n in sys.argv[1:]}))
"""


def test_every_study_is_the_same_in_processes_of_other_hash_seeds() -> None:
    names = [n.value for n in ALL_NAMES if registry.available(n)]
    root = Path(__file__).resolve().parents[2]
    children = []
    for hash_seed in ("1", "2"):
        env = {**os.environ, "PYTHONHASHSEED": hash_seed}
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(root), env.get("PYTHONPATH")]))
        children.append(
            subprocess.Popen(
                [sys.executable, "-c", CHILD, *names],
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
                cwd=root,
                env=env,
            )
        )
    # JSON on both sides: as the service would send the values.
    here = json.loads(json.dumps({n: sequence(AlgorithmName(n), total, seed=1) for n in names}))
    for child in children:
        out, err = child.communicate(timeout=300)
        assert child.returncode == 0, err[-3000:]
        there = json.loads(out.splitlines()[-1])
        for name in names:
            assert there[name] == here[name], name
