"""A template that uses every field of a real JobSpec reaches the cluster as written.

The renderer may only add what docs/trial-jobs.md lists; this test undoes exactly
those additions and expects the user's JobSpec back, byte for byte.
"""

from __future__ import annotations

import copy
import json
from typing import Any

from kubesweep.api import Experiment
from kubesweep.rendering import COLLECTOR_NAME, METRICS_VOLUME, render_trial

from .conftest import TOKEN, env, experiment, primary, settings, trial

FULL_JOB: dict[str, Any] = {
    "parallelism": 1,
    "completions": 1,
    "completionMode": "NonIndexed",
    "activeDeadlineSeconds": 3600,
    "ttlSecondsAfterFinished": 86400,
    "backoffLimit": 5,
    "podReplacementPolicy": "Failed",
    "suspend": False,
    "podFailurePolicy": {
        "rules": [
            {
                "action": "FailJob",
                "onExitCodes": {"containerName": "trainer", "operator": "In", "values": [42]},
            },
            {"action": "Ignore", "onPodConditions": [{"type": "DisruptionTarget"}]},
        ]
    },
    "template": {
        "metadata": {
            "labels": {"team": "vision", "app.kubernetes.io/name": "mnist"},
            "annotations": {"cluster-autoscaler.kubernetes.io/safe-to-evict": "false"},
        },
        "spec": {
            "restartPolicy": "OnFailure",
            "automountServiceAccountToken": True,
            "serviceAccountName": "trainer",
            "priorityClassName": "research",
            "schedulerName": "default-scheduler",
            "terminationGracePeriodSeconds": 60,
            "nodeSelector": {"nvidia.com/gpu.product": "NVIDIA-H100-80GB-HBM3"},
            "tolerations": [
                {"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}
            ],
            "affinity": {
                "nodeAffinity": {
                    "requiredDuringSchedulingIgnoredDuringExecution": {
                        "nodeSelectorTerms": [
                            {
                                "matchExpressions": [
                                    {
                                        "key": "topology.kubernetes.io/zone",
                                        "operator": "In",
                                        "values": ["eu-west-1a"],
                                    }
                                ]
                            }
                        ]
                    }
                },
                "podAntiAffinity": {
                    "preferredDuringSchedulingIgnoredDuringExecution": [
                        {
                            "weight": 50,
                            "podAffinityTerm": {
                                "topologyKey": "kubernetes.io/hostname",
                                "labelSelector": {"matchLabels": {"team": "vision"}},
                            },
                        }
                    ]
                },
            },
            "topologySpreadConstraints": [
                {
                    "maxSkew": 1,
                    "topologyKey": "kubernetes.io/hostname",
                    "whenUnsatisfiable": "ScheduleAnyway",
                    "labelSelector": {"matchLabels": {"team": "vision"}},
                }
            ],
            "securityContext": {"runAsUser": 1000, "runAsGroup": 1000, "fsGroup": 1000},
            "imagePullSecrets": [{"name": "registry-credentials"}],
            "dnsPolicy": "ClusterFirst",
            "hostIPC": False,
            "volumes": [
                {"name": "data", "persistentVolumeClaim": {"claimName": "mnist-data"}},
                {"name": "shm", "emptyDir": {"medium": "Memory", "sizeLimit": "8Gi"}},
                {"name": "config", "configMap": {"name": "trainer-config"}},
            ],
            "initContainers": [
                {
                    "name": "fetch",
                    "image": "busybox:1.36",
                    "command": ["sh", "-c", "cp -r /src/. /data/"],
                    "volumeMounts": [{"name": "data", "mountPath": "/data"}],
                }
            ],
            "containers": [
                {
                    "name": "trainer",
                    "image": "acme/mnist:1.0",
                    "imagePullPolicy": "IfNotPresent",
                    "workingDir": "/app",
                    "command": ["python", "train.py"],
                    "args": ["--lr=${params.lr}", "--out=/out/${trial.name}"],
                    "env": [
                        {"name": "RUN", "value": "${experiment.name}/${trial.name}"},
                        {
                            "name": "WANDB_KEY",
                            "valueFrom": {"secretKeyRef": {"name": "wandb", "key": "key"}},
                        },
                    ],
                    "envFrom": [{"configMapRef": {"name": "trainer-env"}}],
                    "ports": [{"name": "metrics", "containerPort": 9090}],
                    "resources": {
                        "requests": {"cpu": "4", "memory": "16Gi", "nvidia.com/gpu": "1"},
                        "limits": {"memory": "16Gi", "nvidia.com/gpu": "1"},
                    },
                    "securityContext": {
                        "allowPrivilegeEscalation": False,
                        "capabilities": {"drop": ["ALL"]},
                    },
                    "volumeMounts": [
                        {"name": "data", "mountPath": "/data", "readOnly": True},
                        {"name": "shm", "mountPath": "/dev/shm"},
                    ],
                    "readinessProbe": {"exec": {"command": ["true"]}},
                    "terminationMessagePolicy": "FallbackToLogsOnError",
                },
                {
                    "name": "tensorboard",
                    "image": "tensorflow/tensorflow:2.16.1",
                    "args": ["--logdir=${params.lr}"],
                    "resources": {"limits": {"cpu": "500m"}},
                },
            ],
        },
    },
}


def _experiment() -> Experiment:
    def bend(document: dict[str, Any]) -> None:
        document["spec"]["trialTemplate"]["job"] = copy.deepcopy(FULL_JOB)
        document["spec"]["trialTemplate"]["queueName"] = "gpu-queue"

    return experiment(bend)


def strip_injections(job: dict[str, Any]) -> dict[str, Any]:
    """Undo the documented additions of the renderer; what remains is the user's JobSpec."""
    spec: dict[str, Any] = copy.deepcopy(job["spec"])
    pod = spec["template"]["spec"]
    pod["initContainers"] = [c for c in pod["initContainers"] if c["name"] != COLLECTOR_NAME]
    pod["volumes"] = [v for v in pod["volumes"] if v["name"] != METRICS_VOLUME]
    labels = spec["template"]["metadata"]["labels"]
    for key in ("kubesweep.io/experiment", "kubesweep.io/trial", "app.kubernetes.io/managed-by"):
        del labels[key]
    trainer = pod["containers"][0]
    trainer["env"] = [e for e in trainer["env"] if not e["name"].startswith("KUBESWEEP_")]
    trainer["volumeMounts"] = [m for m in trainer["volumeMounts"] if m["name"] != METRICS_VOLUME]
    # Undo the stdout wrapper of conftest.fake_wrap and the placeholder substitution.
    assert trainer["command"][:2] == ["/bin/sh", "-c"]
    trainer["command"], trainer["args"] = trainer["args"][:2], trainer["args"][2:]
    trainer["args"] = [a.replace("0.001", "${params.lr}") for a in trainer["args"]]
    trainer["args"] = [a.replace("mnist-4", "${trial.name}") for a in trainer["args"]]
    trainer["env"][0]["value"] = "${experiment.name}/${trial.name}"
    return spec


def test_every_jobspec_field_is_preserved_except_the_documented_injections() -> None:
    job = render_trial(_experiment(), trial(), settings(), TOKEN)
    assert strip_injections(job) == FULL_JOB


def test_the_substituted_values_are_the_trials() -> None:
    job = render_trial(_experiment(), trial(), settings(), TOKEN)
    trainer = primary(job)
    assert trainer["args"][-2:] == ["--lr=0.001", "--out=/out/mnist-4"]
    assert env(trainer)["RUN"] == "mnist/mnist-4"
    assert env(trainer)["WANDB_KEY"] == {"secretKeyRef": {"name": "wandb", "key": "key"}}


def test_template_choices_win_over_kubesweep_defaults() -> None:
    job = render_trial(_experiment(), trial(), settings(), TOKEN)
    pod = job["spec"]["template"]["spec"]
    assert pod["automountServiceAccountToken"] is True
    assert pod["restartPolicy"] == "OnFailure"
    assert job["spec"]["backoffLimit"] == 5
    assert job["spec"]["suspend"] is False


def test_gpu_and_other_resources_are_untouched() -> None:
    job = render_trial(_experiment(), trial(), settings(), TOKEN)
    pod = job["spec"]["template"]["spec"]
    assert (
        pod["containers"][0]["resources"]
        == FULL_JOB["template"]["spec"]["containers"][0]["resources"]
    )
    assert pod["containers"][1] == FULL_JOB["template"]["spec"]["containers"][1]


def test_sidecar_comes_after_the_users_init_containers() -> None:
    job = render_trial(_experiment(), trial(), settings(), TOKEN)
    names = [c["name"] for c in job["spec"]["template"]["spec"]["initContainers"]]
    assert names == ["fetch", COLLECTOR_NAME]


def test_rendering_is_deterministic_and_leaves_its_inputs_alone() -> None:
    exp, tri, conf = _experiment(), trial(), settings()
    before = (exp.model_dump(), tri.model_dump(), copy.deepcopy(dict(conf.collector_resources)))
    first = render_trial(exp, tri, conf, TOKEN)
    first_text = json.dumps(first)
    first["spec"]["template"]["spec"]["containers"][0]["args"].append("mutated")
    first["spec"]["template"]["spec"]["initContainers"][-1]["resources"]["limits"]["x"] = "1"
    second = render_trial(exp, tri, conf, TOKEN)
    assert json.dumps(second) == first_text
    assert (exp.model_dump(), tri.model_dump(), dict(conf.collector_resources)) == before
    assert exp.spec.trial_template.job == FULL_JOB
