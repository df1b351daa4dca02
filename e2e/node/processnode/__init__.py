"""A Kubernetes node that runs pods as local processes (test infrastructure).

It does a kubelet's API-facing work for real: registers a ``Node`` with the
capacity it is given (cpu, memory, pods, ``nvidia.com/gpu``), renews its
``Lease`` and ``Ready`` condition, runs the pods the real scheduler binds to it,
writes their status the way a kubelet does (phase, conditions, container
statuses with states, exit codes, restart counts and termination messages) and
finishes graceful deletion (SIGTERM, grace period, SIGKILL, then deletes the pod
with grace 0).

What it does **not** do: pull or run images. A container's ``command`` + ``args``
run as a process with this machine's Python environment (the repository's
``.venv/bin`` first on ``PATH``) in the repository root unless ``workingDir`` says
otherwise. Pods use host networking semantics: every pod's IP is 127.0.0.1.

Per pod: one directory under ``<state>/pods/<ns>_<name>_<uid>/`` holds volumes,
termination-message files and per-container logs (``<container>/<restart>.log``).
Volumes (emptyDir, configMap, secret, projected incl. service-account tokens,
downwardAPI, hostPath) are bind-mounted at their ``mountPath`` inside a private
mount namespace per container (``unshare -m``), so a pod's containers share
them and other pods do not see them. Missing mount points are created on the
host as empty directories/files (the process has no root filesystem of its own).

GPUs: a pod's ``nvidia.com/gpu`` limits get device indices that no other running
pod holds, passed as ``CUDA_VISIBLE_DEVICES`` and ``NVIDIA_VISIBLE_DEVICES``;
containers without a GPU limit get empty values.

Restart back-off is shorter than a kubelet's (1 s doubling to 20 s, not 10 s to
5 min) so tests of restarts finish quickly. Startup, liveness and readiness
probes run (exec inside the container's mounts, httpGet, tcpSocket; grpc as a
TCP connect).

Run: ``python -m node.processnode --kubeconfig ... --name ... --state-dir ...``
(``e2e/`` on ``PYTHONPATH``); ``e2e/cluster/local.py`` does this.

The modules, from the node down to one container:

- :mod:`.main`: the command line; wires the node, its kubelet API and its loops.
- :mod:`.kubelet`: the ``Node`` object, its heartbeat, the watch of the pods
  bound to it, one runner per pod.
- :mod:`.kubeletapi`: the node's HTTPS port, so ``kubectl logs`` works.
- :mod:`.runner`: one pod's life, from admission to its terminal phase.
- :mod:`.podstatus`: the pod's status, written as a kubelet writes it.
- :mod:`.probes`: startup, liveness and readiness probes.
- :mod:`.runtime`: container processes: start in their mounts, exit, kill.
- :mod:`.volumes`, :mod:`.environment`, :mod:`.sources`: what a container gets
  from the API: volumes, variables, and the objects and fields both read.
- :mod:`.container`: one container's state and its status entry.
- :mod:`.gpus`: device indices, disjoint between running pods.
- :mod:`.layout`: where a pod's files lie in the state directory, and log reading.
- :mod:`.host`, :mod:`.clock`: what pods share with this machine; timestamps.
"""

from node.processnode.layout import container_log_path, read_container_log

__all__ = ["container_log_path", "read_container_log"]
