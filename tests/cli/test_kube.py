"""Finding and reading a kubeconfig as kubectl does."""

from __future__ import annotations

import base64
from pathlib import Path

import pytest
import yaml

from kubesweep.cli.kube import ConfigError, Kube, kubeconfig_path, load_config, path_for


def write_kubeconfig(path: Path) -> Path:
    document = {
        "apiVersion": "v1",
        "kind": "Config",
        "current-context": "dev",
        "clusters": [
            {
                "name": "c",
                "cluster": {
                    "server": "https://127.0.0.1:6443/",
                    "certificate-authority-data": base64.b64encode(b"not a cert").decode(),
                },
            },
            {"name": "plain", "cluster": {"server": "http://127.0.0.1:8080"}},
        ],
        "users": [{"name": "u", "user": {"token": "secret"}}],
        "contexts": [
            {"name": "dev", "context": {"cluster": "c", "user": "u", "namespace": "team-a"}},
            {"name": "other", "context": {"cluster": "plain"}},
        ],
    }
    path.write_text(yaml.safe_dump(document))
    return path


def test_kubeconfig_path_follows_kubectl(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    config = write_kubeconfig(tmp_path / "config")
    monkeypatch.setenv("KUBECONFIG", f"{tmp_path / 'missing'}:{config}")
    assert kubeconfig_path() == config
    assert kubeconfig_path("/explicit") == Path("/explicit")


def test_context_namespace_token_and_inline_ca(tmp_path: Path) -> None:
    path = write_kubeconfig(tmp_path / "config")
    config = load_config(str(path))
    assert config.server == "https://127.0.0.1:6443"
    assert config.namespace == "team-a"
    assert config.token == "secret"
    assert config.ca_file is not None
    assert Path(config.ca_file).read_bytes() == b"not a cert"
    assert load_config(str(path), namespace="x").namespace == "x"
    other = load_config(str(path), context="other")
    assert other.namespace == "default"
    assert Kube(other).namespace == "default"  # plain http needs no TLS context
    with pytest.raises(ConfigError, match="no context named 'nope'"):
        load_config(str(path), context="nope")


def test_no_kubeconfig_is_a_clear_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("KUBECONFIG", raising=False)
    monkeypatch.setenv("HOME", str(tmp_path))
    with pytest.raises(ConfigError, match="no kubeconfig"):
        load_config()


def test_path_for() -> None:
    assert path_for("v1", "pods", "ns", "p") == "/api/v1/namespaces/ns/pods/p"
    assert (
        path_for("kubesweep.io/v1alpha1", "experiments")
        == "/apis/kubesweep.io/v1alpha1/experiments"
    )
