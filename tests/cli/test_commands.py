"""The command set as a user meets it: help text whole and grouped, ``create`` and ``delete``."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner

from kubesweep.cli.main import main
from tests.cli.conftest import EXAMPLES
from tests.cli.test_kube import _Answers

EXPERIMENTS = "/apis/kubesweep.io/v1alpha1/namespaces/team-a/experiments"


def test_help_lists_every_command_whole_under_its_group() -> None:
    result = CliRunner().invoke(main, ["--help"], terminal_width=80)
    assert result.exit_code == 0
    text = result.output
    assert "..." not in text.split("\n", 1)[1]  # the usage line's own ``[ARGS]...`` aside
    sections = ["Run on this machine:", "Read results", "Change a cluster:"]
    positions = [text.index(section) for section in sections]
    assert positions == sorted(positions)
    local, readers, cluster = (
        text[positions[0] : positions[1]],
        text[positions[1] : positions[2]],
        text[positions[2] :],
    )
    for name in ("run", "validate"):
        assert f"  {name} " in local
    for name in ("get", "describe", "trials", "watch", "logs", "best", "report"):
        assert f"  {name} " in readers
    for name in ("create", "delete"):
        assert f"  {name} " in cluster
    for name, command in main.commands.items():
        short = command.get_short_help_str(limit=200)
        assert short.endswith("."), (name, short)
        assert " ".join(short.split()[:3]) in " ".join(text.split()), name


@pytest.fixture
def api(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[_Answers]:
    created = yaml.safe_load((EXAMPLES / "random.yaml").read_text())
    created["metadata"]["namespace"] = "team-a"
    server = _Answers(
        {
            EXPERIMENTS: (201, json.dumps(created)),
            f"{EXPERIMENTS}/digits-random": (200, '{"kind": "Status", "status": "Success"}'),
            f"{EXPERIMENTS}/gone": (404, '{"kind": "Status", "message": "not found", "code": 404}'),
        }
    )
    config = {
        "apiVersion": "v1",
        "kind": "Config",
        "current-context": "test",
        "clusters": [{"name": "c", "cluster": {"server": server.url}}],
        "users": [{"name": "u", "user": {"token": "t"}}],
        "contexts": [{"name": "test", "context": {"cluster": "c", "user": "u"}}],
    }
    (tmp_path / "config").write_text(yaml.safe_dump(config))
    monkeypatch.setenv("KUBECONFIG", str(tmp_path / "config"))
    yield server
    server.close()


def test_create_posts_the_validated_experiment(api: _Answers) -> None:
    result = CliRunner().invoke(main, ["create", str(EXAMPLES / "random.yaml"), "-n", "team-a"])
    assert result.exit_code == 0, result.output
    assert "experiment.kubesweep.io/digits-random created" in result.output
    method, path, body = api.requests[-1]
    assert (method, path) == ("POST", EXPERIMENTS)
    sent = json.loads(body)
    assert sent["metadata"] == {"name": "digits-random", "namespace": "team-a", **sent["metadata"]}
    assert "status" not in sent


def test_create_refuses_an_invalid_manifest_before_any_request(
    api: _Answers, tmp_path: Path
) -> None:
    manifest = yaml.safe_load((EXAMPLES / "random.yaml").read_text())
    manifest["spec"]["budget"]["parallelTrials"] = 100
    path = tmp_path / "bad.yaml"
    path.write_text(yaml.safe_dump(manifest))
    result = CliRunner().invoke(main, ["create", str(path), "-n", "team-a"])
    assert result.exit_code == 2
    assert "spec.budget" in result.output
    assert not api.requests


def test_delete_deletes_and_names_a_missing_experiment(api: _Answers) -> None:
    result = CliRunner().invoke(main, ["delete", "digits-random", "-n", "team-a"])
    assert result.exit_code == 0, result.output
    assert "experiment.kubesweep.io/digits-random deleted" in result.output
    assert api.requests[-1][:2] == ("DELETE", f"{EXPERIMENTS}/digits-random")
    result = CliRunner().invoke(main, ["delete", "gone", "-n", "team-a"])
    assert result.exit_code == 1
    assert "experiment gone not found in namespace team-a" in result.output
