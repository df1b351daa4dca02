"""``trialTemplate.checkpoints``: where each trial's directory is, and what is accepted."""

from __future__ import annotations

from typing import Any

import pytest

from kubesweep.api import Checkpoints, ManifestError, parse_experiment


def test_each_trial_has_its_own_directory_under_the_experiment() -> None:
    claim = Checkpoints.model_validate({"volumeClaim": "sweeps", "mountPath": "/ckpt/"})
    assert claim.location("mnist", "mnist-3") == "/ckpt/mnist/mnist-3"
    store = Checkpoints.model_validate({"uri": "s3://bucket/sweeps"})
    assert store.location("mnist", "mnist-3") == "s3://bucket/sweeps/mnist/mnist-3"


def test_a_claim_mounts_at_checkpoints_unless_told_otherwise() -> None:
    assert Checkpoints.model_validate({"volumeClaim": "sweeps"}).mount_path == "/checkpoints"


def test_pbt_with_checkpoints_and_a_fidelity_is_accepted(manifest: dict[str, Any]) -> None:
    spec = manifest["spec"]
    spec["algorithm"] = {"name": "pbt", "settings": {"populationSize": 4}}
    spec["fidelity"] = {"parameter": "epochs", "min": 2, "max": 10}
    spec["trialTemplate"]["checkpoints"] = {"volumeClaim": "sweeps"}
    parsed = parse_experiment(manifest).spec
    assert parsed.is_multi_fidelity
    assert parsed.trial_template.checkpoints is not None


def test_pbt_without_checkpoints_is_refused_naming_the_field(manifest: dict[str, Any]) -> None:
    spec = manifest["spec"]
    spec["algorithm"] = {"name": "pbt"}
    spec["fidelity"] = {"parameter": "epochs", "min": 2, "max": 10}
    with pytest.raises(ManifestError, match=r"trialTemplate.checkpoints is required by pbt"):
        parse_experiment(manifest)
