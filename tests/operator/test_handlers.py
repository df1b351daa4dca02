"""The kopf edge: registration, and the slim views the indexes keep."""

from __future__ import annotations

from kubesweep.operator.config import OperatorConfig, config_from_args
from kubesweep.operator.handlers import Operator, pod_record, slim_job, slim_trial
from kubesweep.rendering import COLLECTOR_NAME


def test_operator_registers_indexes_wakeups_and_one_daemon():
    operator = Operator(OperatorConfig())
    ids = {h.id for h in operator.registry._indexing.get_all_handlers()}
    assert ids == {"trials_idx", "jobs_idx", "pods_idx"}  # the kwarg names of the daemon
    daemons = list(operator.registry._spawning.get_all_handlers())
    assert len(daemons) == 1
    # no on.create/on.update: nothing is written to the Experiment but status
    assert list(operator.registry._changing.get_all_handlers()) == []


def test_wake_sets_only_known_experiments():
    operator = Operator(OperatorConfig())
    operator.wake("ns", "unknown")  # no daemon yet: nothing happens
    import asyncio

    event = operator.wakeups.setdefault(("ns", "exp"), asyncio.Event())
    operator.wake("ns", "exp")
    assert event.is_set()


def test_slim_trial_drops_metadata_noise():
    trial = slim_trial(
        {
            "metadata": {"name": "exp-0", "namespace": "ns", "uid": "u", "managedFields": [{}]},
            "spec": {"experiment": "exp", "index": 0, "parameters": {"lr": 0.1}},
            "status": {"phase": "Running"},
        }
    )
    assert trial is not None
    assert trial.metadata.uid == "u"
    assert "managedFields" not in trial.metadata.model_dump()
    assert slim_trial({"metadata": {"name": "x"}, "spec": {"index": -1}}) is None


def test_slim_job_keeps_gpus_and_status():
    job = slim_job(
        {
            "metadata": {"name": "exp-0"},
            "spec": {
                "suspend": True,
                "template": {
                    "spec": {
                        "containers": [
                            {
                                "name": "m",
                                "image": "i",
                                "resources": {"limits": {"nvidia.com/gpu": 1}},
                            }
                        ]
                    }
                },
            },
            "status": {"active": 1},
        }
    )
    assert job["spec"]["suspend"] is True
    assert job["spec"]["template"]["spec"]["containers"][0]["resources"]["limits"]
    assert job["status"] == {"active": 1}


def test_pod_record_reads_waiting_and_the_collector_summary():
    record = pod_record(
        {
            "metadata": {"name": "p"},
            "status": {
                "phase": "Pending",
                "conditions": [
                    {
                        "type": "PodScheduled",
                        "status": "False",
                        "reason": "Unschedulable",
                        "message": "0/1 nodes have free nvidia.com/gpu",
                    }
                ],
                "initContainerStatuses": [
                    {"name": COLLECTOR_NAME, "state": {"terminated": {"message": '{"v":1}'}}}
                ],
            },
        }
    )
    assert record.view.unschedulable_message == "0/1 nodes have free nvidia.com/gpu"
    assert record.summary_message == '{"v":1}'


def test_flags_and_environment(monkeypatch):
    monkeypatch.setenv("KUBESWEEP_TOKEN_KEY", "k3y")
    monkeypatch.setenv("KUBESWEEP_SUGGESTION_TIMEOUT", "7")
    config, level = config_from_args(["--namespace=a", "--namespace=b", "--peering=ks"])
    assert config.namespaces == ("a", "b")
    assert not config.clusterwide
    assert config.token_key == b"k3y"
    assert config.suggestion_timeout == 7.0
    assert config.peering_name == "ks"
    assert level == "INFO"
    assert config_from_args([])[0].clusterwide
