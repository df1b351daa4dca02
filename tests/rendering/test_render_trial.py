"""``render_trial``: one row per behaviour of the rendered Job."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import pytest

from kubesweep.api import Experiment, Trial
from kubesweep.rendering import (
    COLLECTOR_NAME,
    RenderSettings,
    render_trial,
)

from .conftest import (
    TOKEN,
    UID,
    argv,
    collector,
    env,
    experiment,
    pod_spec,
    primary,
    settings,
    trial,
    user_args,
)

Bender = Callable[[dict[str, Any]], object]
Bend = Bender | None
Check = Callable[[dict[str, Any]], object]


def _template(document: dict[str, Any]) -> dict[str, Any]:
    template: dict[str, Any] = document["spec"]["trialTemplate"]
    return template


def _trainer(document: dict[str, Any]) -> dict[str, Any]:
    container: dict[str, Any] = _template(document)["job"]["template"]["spec"]["containers"][0]
    return container


def _set_args(*args: str) -> Bender:
    def bend(document: dict[str, Any]) -> None:
        _trainer(document)["args"] = list(args)

    return bend


def _metrics(**metrics: Any) -> Bender:
    def bend(document: dict[str, Any]) -> None:
        _template(document)["metrics"] = metrics

    return bend


def _multi_fidelity(document: dict[str, Any]) -> None:
    document["spec"]["algorithm"] = {"name": "hyperband"}
    document["spec"]["fidelity"] = {"parameter": "epochs", "min": 1, "max": 27}
    _trainer(document)["args"] = ["--epochs=${params.epochs}", "--budget=${trial.fidelity}"]


def _identity(job: dict[str, Any]) -> None:
    assert job["apiVersion"] == "batch/v1"
    assert job["kind"] == "Job"
    assert job["metadata"]["name"] == "mnist-4"
    assert job["metadata"]["namespace"] == "team-a"
    labels = {
        "kubesweep.io/experiment": "mnist",
        "kubesweep.io/trial": "mnist-4",
        "app.kubernetes.io/managed-by": "kubesweep",
    }
    assert job["metadata"]["labels"] == labels
    assert job["spec"]["template"]["metadata"]["labels"] == labels
    assert job["metadata"]["ownerReferences"] == [
        {
            "apiVersion": "kubesweep.io/v1alpha1",
            "kind": "Trial",
            "name": "mnist-4",
            "uid": UID,
            "controller": True,
            "blockOwnerDeletion": True,
        }
    ]


def _substituted(job: dict[str, Any]) -> None:
    assert argv(job) == ["python", "train.py", "--lr=0.001", "--layers=3", "--optimizer=adam"]


def _assignment_env(job: dict[str, Any]) -> None:
    variables = env(primary(job))
    assert json.loads(variables["KUBESWEEP_PARAMS"]) == {
        "lr": 0.001,
        "layers": 3,
        "optimizer": "adam",
    }
    assert variables["KUBESWEEP_PARAM_LR"] == "0.001"
    assert variables["KUBESWEEP_PARAM_LAYERS"] == "3"
    assert variables["KUBESWEEP_PARAM_OPTIMIZER"] == "adam"
    assert "KUBESWEEP_PARAM_MOMENTUM" not in variables
    assert variables["KUBESWEEP_TRIAL_NAME"] == "mnist-4"
    assert variables["KUBESWEEP_EXPERIMENT"] == "mnist"
    assert variables["KUBESWEEP_METRICS_DIR"] == "/kubesweep"


def _sidecar(job: dict[str, Any]) -> None:
    sidecar = collector(job)
    assert sidecar["restartPolicy"] == "Always"
    assert sidecar["image"] == "kubesweep/collector:0.1.0"
    assert sidecar["command"] == ["kubesweep-collector"]
    variables = env(sidecar)
    assert variables["KUBESWEEP_INTAKE_URL"].endswith(":8080/intake")
    assert variables["KUBESWEEP_TRIAL_TOKEN"] == TOKEN
    assert variables["KUBESWEEP_TRIAL_NAME"] == "mnist-4"
    assert variables["KUBESWEEP_TRIAL_UID"] == UID
    assert variables["KUBESWEEP_TRIAL_NAMESPACE"] == {
        "fieldRef": {"fieldPath": "metadata.namespace"}
    }
    config = json.loads(variables["KUBESWEEP_COLLECTOR_CONFIG"])
    assert config["source"] == "stdout"
    assert config["path"] == "/kubesweep/stdout.log"
    assert config["metrics"] == ["val_loss", "accuracy"]
    assert sidecar["resources"]["requests"] == {"cpu": "10m", "memory": "32Mi"}
    assert sidecar["securityContext"]["runAsNonRoot"] is True


def _shared_volume(job: dict[str, Any]) -> None:
    assert pod_spec(job)["volumes"] == [{"name": "kubesweep-metrics", "emptyDir": {}}]
    mount = [{"name": "kubesweep-metrics", "mountPath": "/kubesweep"}]
    assert collector(job)["volumeMounts"] == mount
    assert primary(job)["volumeMounts"] == mount


def _stdout_wrapped(job: dict[str, Any]) -> None:
    trainer = primary(job)
    assert trainer["command"][:2] == ["/bin/sh", "-c"]
    assert "/kubesweep/stdout.log" in trainer["command"][2]
    assert trainer["args"] == ["python", "train.py", "--lr=0.001", "--layers=3", "--optimizer=adam"]


def _safe_defaults(job: dict[str, Any]) -> None:
    assert pod_spec(job)["automountServiceAccountToken"] is False
    assert pod_spec(job)["restartPolicy"] == "Never"
    assert job["spec"]["backoffLimit"] == 2
    assert "suspend" not in job["spec"]
    assert "kueue.x-k8s.io/queue-name" not in job["metadata"]["labels"]


def _placeholder(text: str, expected: str) -> tuple[str, Bend, Check]:
    def check(job: dict[str, Any]) -> None:
        assert user_args(job) == [expected]

    return f"placeholder {text}", _set_args(text), check


CASES: list[tuple[str, Bend, Check]] = [
    ("name, namespace, labels and owner", None, _identity),
    ("placeholders in command and args", None, _substituted),
    ("assignment as env", None, _assignment_env),
    ("collector as native sidecar", None, _sidecar),
    ("shared emptyDir in both containers", None, _shared_volume),
    ("stdout source wraps the command", None, _stdout_wrapped),
    ("service-account token, restartPolicy, backoffLimit", None, _safe_defaults),
    _placeholder("--name=${trial.name}", "--name=mnist-4"),
    _placeholder("${trial.index}/${trial.namespace}", "4/team-a"),
    _placeholder("${experiment.name}", "mnist"),
    _placeholder("$${params.lr} is ${params.lr}", "${params.lr} is 0.001"),
    _placeholder("${HOME} ${PATH:-/bin.d} $(POD_IP)", "${HOME} ${PATH:-/bin.d} $(POD_IP)"),
    _placeholder("--momentum=${params.momentum}", "--momentum="),
    _placeholder("${params.lr}${params.layers}", "0.0013"),
    (
        "placeholders in literal env values only",
        lambda d: _trainer(d).update(
            env=[
                {"name": "LR", "value": "${params.lr}"},
                {"name": "POD", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}},
            ]
        ),
        lambda job: (
            (
                env(primary(job))["LR"] == "0.001"
                and env(primary(job))["POD"] == {"fieldRef": {"fieldPath": "metadata.name"}}
                and [e["name"] for e in primary(job)["env"]][-2:] == ["LR", "POD"]
            )
            or pytest.fail("env not substituted or not after kubesweep's")
        ),
    ),
    (
        "kueue queue label, no suspend",
        lambda d: _template(d).update(queueName="team-a-gpus"),
        lambda job: (
            (
                job["metadata"]["labels"]["kueue.x-k8s.io/queue-name"] == "team-a-gpus"
                and "suspend" not in job["spec"]
                and "kueue.x-k8s.io/queue-name" not in job["spec"]["template"]["metadata"]["labels"]
            )
            or pytest.fail("queue label")
        ),
    ),
    (
        "backoffLimit from retries",
        lambda d: _template(d).update(retries=0),
        lambda job: job["spec"]["backoffLimit"] == 0 or pytest.fail("backoffLimit"),
    ),
    (
        "restartPolicy defaults to Never",
        lambda d: _template(d)["job"]["template"]["spec"].pop("restartPolicy"),
        lambda job: pod_spec(job)["restartPolicy"] == "Never" or pytest.fail("restartPolicy"),
    ),
    (
        "template may ask for the service-account token",
        lambda d: _template(d)["job"]["template"]["spec"].update(automountServiceAccountToken=True),
        lambda job: (
            pod_spec(job)["automountServiceAccountToken"] is True or pytest.fail("automount")
        ),
    ),
    (
        "pod template labels are kept beside kubesweep's",
        lambda d: _template(d)["job"]["template"].update(
            metadata={"labels": {"team": "vision", "kubesweep.io/trial": "spoofed"}}
        ),
        lambda job: (
            job["spec"]["template"]["metadata"]["labels"]
            == {
                "team": "vision",
                "kubesweep.io/trial": "mnist-4",
                "kubesweep.io/experiment": "mnist",
                "app.kubernetes.io/managed-by": "kubesweep",
            }
            or pytest.fail("labels")
        ),
    ),
    (
        "gpu resources preserved exactly",
        lambda d: _trainer(d).update(
            resources={"limits": {"nvidia.com/gpu": 1, "cpu": "2"}, "requests": {"cpu": "1"}}
        ),
        lambda job: (
            primary(job)["resources"]
            == {"limits": {"nvidia.com/gpu": 1, "cpu": "2"}, "requests": {"cpu": "1"}}
            or pytest.fail("resources")
        ),
    ),
    (
        "fidelity as a parameter",
        _multi_fidelity,
        lambda job: (
            (
                user_args(job)[-2:] == ["--epochs=9", "--budget=9"]
                and env(primary(job))["KUBESWEEP_PARAM_EPOCHS"] == "9"
                and json.loads(env(primary(job))["KUBESWEEP_PARAMS"])["epochs"] == 9
            )
            or pytest.fail(str(user_args(job)))
        ),
    ),
    (
        "json source: relative path lands in the shared volume",
        _metrics(source="json", path="metrics.jsonl"),
        lambda job: (
            (
                env(primary(job))["KUBESWEEP_METRICS_PATH"] == "/kubesweep/metrics.jsonl"
                and json.loads(env(collector(job))["KUBESWEEP_COLLECTOR_CONFIG"])["path"]
                == "/kubesweep/metrics.jsonl"
                and primary(job)["command"] == ["python", "train.py"]
            )
            or pytest.fail("json path")
        ),
    ),
    (
        "file source outside /kubesweep: the volume is also mounted there",
        _metrics(source="file", path="/output/metrics.txt", filters=[r"(\w+)=(\S+)"]),
        lambda job: (
            (
                {"name": "kubesweep-metrics", "mountPath": "/output"}
                in primary(job)["volumeMounts"]
                and {"name": "kubesweep-metrics", "mountPath": "/output"}
                in collector(job)["volumeMounts"]
                and json.loads(env(collector(job))["KUBESWEEP_COLLECTOR_CONFIG"])["filters"]
                == [r"(\w+)=(\S+)"]
            )
            or pytest.fail("file mounts")
        ),
    ),
    (
        "tfevent source: the directory itself is shared",
        _metrics(source="tfevent", path="/logs/tb"),
        lambda job: (
            {"name": "kubesweep-metrics", "mountPath": "/logs/tb"} in primary(job)["volumeMounts"]
            or pytest.fail("tfevent mount")
        ),
    ),
    (
        "push source: the client learns the local endpoint",
        _metrics(source="push"),
        lambda job: (
            (
                env(primary(job))["KUBESWEEP_REPORT_URL"] == "http://127.0.0.1:9477"
                and json.loads(env(collector(job))["KUBESWEEP_COLLECTOR_CONFIG"])["port"] == 9477
            )
            or pytest.fail("push")
        ),
    ),
    (
        "prometheus source keeps its port and scrape path",
        _metrics(source="prometheus", port=9090, scrapePath="/m"),
        lambda job: (
            json.loads(env(collector(job))["KUBESWEEP_COLLECTOR_CONFIG"])
            == {
                "source": "prometheus",
                "port": 9090,
                "scrapePath": "/m",
                "intervalSeconds": 10.0,
                "filters": [],
                "metrics": ["val_loss", "accuracy"],
                "objectiveStrategy": "min",
            }
            or pytest.fail("prometheus")
        ),
    ),
    (
        "only the primary container is changed",
        lambda d: _template(d)["job"]["template"]["spec"]["containers"].append(
            {"name": "other", "image": "x", "command": ["echo", "${params.lr}"]}
        ),
        lambda job: (
            primary(job, "other")
            == {"name": "other", "image": "x", "command": ["echo", "${params.lr}"]}
            or pytest.fail("other container")
        ),
    ),
]


@pytest.mark.parametrize(("case", "bend", "check"), CASES, ids=[c[0] for c in CASES])
def test_render(case: str, bend: Bend, check: Check) -> None:
    exp = experiment(bend)
    fidelity = 9.0 if exp.spec.fidelity is not None else None
    check(render_trial(exp, trial(fidelity=fidelity), settings(), TOKEN))


def test_int_parameters_render_as_integers_even_when_suggested_as_floats() -> None:
    job = render_trial(experiment(), trial({**_PARAMS, "layers": 3.0}), settings(), TOKEN)
    assert "--layers=3" in user_args(job)
    assert json.loads(env(primary(job))["KUBESWEEP_PARAMS"])["layers"] == 3


_PARAMS: dict[str, Any] = {"lr": 1e-05, "layers": 3, "optimizer": "sgd", "momentum": 0.9}


def test_conditional_parameter_when_active() -> None:
    exp = experiment(_set_args("--lr=${params.lr}", "--momentum=${params.momentum}"))
    job = render_trial(exp, trial(_PARAMS), settings(), TOKEN)
    assert user_args(job) == ["--lr=1e-05", "--momentum=0.9"]
    assert env(primary(job))["KUBESWEEP_PARAM_MOMENTUM"] == "0.9"


def test_boolean_values_render_as_yaml_booleans() -> None:
    def bend(document: dict[str, Any]) -> None:
        document["spec"]["parameters"].append(
            {"name": "amp", "type": "categorical", "values": [True, False]}
        )
        _trainer(document)["args"] = ["--amp=${params.amp}"]

    job = render_trial(experiment(bend), trial({**_PARAMS, "amp": True}), settings(), TOKEN)
    assert user_args(job) == ["--amp=true"]
    assert json.loads(env(primary(job))["KUBESWEEP_PARAMS"])["amp"] is True


def test_collector_settings_reach_the_sidecar() -> None:
    conf = settings(
        collector_image_pull_policy="Never",
        collector_resources={"limits": {"memory": "64Mi"}},
        metrics_volume_size_limit="1Gi",
        push_port=7000,
    )
    job = render_trial(experiment(_metrics(source="push")), trial(), conf, TOKEN)
    assert collector(job)["imagePullPolicy"] == "Never"
    assert collector(job)["resources"] == {"limits": {"memory": "64Mi"}}
    assert pod_spec(job)["volumes"][-1]["emptyDir"] == {"sizeLimit": "1Gi"}
    assert env(primary(job))["KUBESWEEP_REPORT_URL"] == "http://127.0.0.1:7000"


def test_namespace_falls_back_to_the_experiments() -> None:
    job = render_trial(experiment(), trial(namespace=None), settings(), TOKEN)
    assert job["metadata"]["namespace"] == "team-a"


def test_a_collector_container_name_is_reserved_only_as_sidecar() -> None:
    job = render_trial(experiment(), trial(), settings(), TOKEN)
    assert [c["name"] for c in pod_spec(job)["initContainers"]] == [COLLECTOR_NAME]


def _error_cases() -> list[tuple[str, Bend, dict[str, Any], str]]:
    long_name = "x" * 62
    return [
        (
            "unknown parameter",
            _set_args("${params.lrr}"),
            {},
            r"args\[0\]: unknown placeholder \$\{params.lrr\}",
        ),
        ("unknown namespace", _set_args("${param.lr}"), {}, r"unknown placeholder \$\{param.lr\}"),
        (
            "trial.fidelity without fidelity",
            _set_args("${trial.fidelity}"),
            {},
            r"\$\{trial.fidelity\}",
        ),
        (
            "stdout needs a command",
            lambda d: _trainer(d).pop("command"),
            {},
            r"containers\[0\]\.command: the stdout metrics source needs an explicit command",
        ),
        (
            "reserved container name",
            lambda d: _template(d)["job"]["template"]["spec"].update(
                initContainers=[{"name": "kubesweep-collector", "image": "x"}]
            ),
            {},
            r"initContainers\[0\]\.name: kubesweep-collector is reserved",
        ),
        (
            "reserved volume name",
            lambda d: _template(d)["job"]["template"]["spec"].update(
                volumes=[{"name": "kubesweep-metrics", "emptyDir": {}}]
            ),
            {},
            r"volumes\[0\]\.name: kubesweep-metrics is reserved",
        ),
        (
            "reserved env",
            lambda d: _trainer(d).update(env=[{"name": "KUBESWEEP_PARAMS", "value": "{}"}]),
            {},
            r"env\[0\]\.name: KUBESWEEP_PARAMS is set by kubesweep",
        ),
        (
            "env names collide",
            lambda d: d["spec"]["parameters"].append(
                {"name": "LR", "type": "float", "min": 0.1, "max": 1}
            ),
            {},
            r"lr and LR both become KUBESWEEP_PARAM_LR",
        ),
        (
            "metrics file in /",
            _metrics(source="json", path="/metrics.jsonl"),
            {},
            r"mount the metrics volume over /, which the container needs",
        ),
        (
            "metrics dir already mounted",
            lambda d: (
                _metrics(source="json", path="/data/m.jsonl")(d),
                _trainer(d).update(volumeMounts=[{"name": "data", "mountPath": "/data"}]),
            ),
            {},
            r"/data is already a volume mount of the primary container",
        ),
        (
            "metrics dir is a system directory",
            _metrics(source="file", path="/etc/metrics.txt"),
            {},
            r"over /etc, which the container needs",
        ),
        (
            "relative path escapes the volume",
            _metrics(source="json", path="../etc/m.jsonl"),
            {},
            r"relative path '\.\./etc/m\.jsonl' leaves /kubesweep",
        ),
        ("no uid", None, {"uid": None}, r"has no metadata\.uid"),
        (
            "undeclared parameter",
            None,
            {"parameters": {**_PARAMS, "dropout": 0.1}},
            r"assigns dropout",
        ),
        ("no fidelity", _multi_fidelity, {}, r"has no spec\.fidelity"),
        ("name too long", None, {"experiment_name": long_name}, r"not a valid Job name"),
        ("wrong experiment", None, {"experiment_name": "other"}, r"belongs to experiment 'other'"),
    ]


@pytest.mark.parametrize(
    ("case", "bend", "trial_args", "message"), _error_cases(), ids=[c[0] for c in _error_cases()]
)
def test_render_refuses(case: str, bend: Bend, trial_args: dict[str, Any], message: str) -> None:
    exp = experiment(bend)
    if "experiment_name" in trial_args and trial_args["experiment_name"] != "other":
        exp = Experiment.model_validate(
            {**exp.model_dump(by_alias=True), "metadata": {"name": trial_args["experiment_name"]}}
        )
    with pytest.raises(ValueError, match=message):
        render_trial(exp, trial(**trial_args), settings(), TOKEN)


@pytest.mark.parametrize(
    ("conf", "token", "message"),
    [
        (settings(), None, "needs the trial's token"),
    ],
    ids=["literal token missing"],
)
def test_settings_errors(conf: RenderSettings, token: str | None, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        render_trial(experiment(), trial(), conf, token)


def test_trial_without_namespace_anywhere_is_refused() -> None:
    exp = Experiment.model_validate(
        {**experiment().model_dump(by_alias=True), "metadata": {"name": "mnist"}}
    )
    bare: Trial = trial(namespace=None)
    with pytest.raises(ValueError, match="has no namespace"):
        render_trial(exp, bare, settings(), TOKEN)


def test_the_default_wrapper_is_the_collectors() -> None:
    from kubesweep.collector import wrap_command

    conf = RenderSettings(collector_image="c", intake_url="http://intake")
    assert conf.wrap_command is wrap_command
    job = render_trial(experiment(), trial(), conf, TOKEN)
    assert (primary(job)["command"], primary(job)["args"]) == wrap_command(
        ["python", "train.py"],
        ["--lr=0.001", "--layers=3", "--optimizer=adam"],
        "/kubesweep/stdout.log",
    )


def test_trainer_waits_for_the_collector_to_be_ready() -> None:
    """A startupProbe on the sidecar orders the trainer after the collector's signal handler."""
    from kubesweep.podcontract import METRICS_DIR, READY_FILE
    from kubesweep.rendering import render_trial

    from .conftest import collector, experiment, settings, trial

    job = render_trial(experiment(), trial(), settings(), token="t")
    sidecar = collector(job)
    assert sidecar["restartPolicy"] == "Always"
    probe = sidecar["startupProbe"]["exec"]["command"]
    assert probe == ["test", "-e", f"{METRICS_DIR}/{READY_FILE}"]
