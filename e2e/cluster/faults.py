"""Faults a test inflicts on the local cluster's components, each undone before it returns.

The components are processes this harness started (``ClusterInfo.pids``), so a
fault is a signal: SIGSTOP/SIGCONT to freeze one (etcd stops answering, the
API server's calls hang), SIGKILL and a start with the same command line, the
same environment and the same log to restart one (the API server) or to lose
one for good until it is brought back (the node). Nothing here changes the
machine beyond those processes.

A node is lost as a machine is: with every container on it. The process node's
containers are its children's process groups; the real node's are found by the
kubelet's cgroups (``node.realnode.lose``), and it boots again with its disks
and without what its ``/run`` held.
"""

from __future__ import annotations

import contextlib
import os
import signal
from collections.abc import Callable, Iterator
from pathlib import Path

from cluster import local


def _command_of(pid: int) -> tuple[list[str], dict[str, str]]:
    """The command line and environment a running process was started with."""
    proc = Path(f"/proc/{pid}")
    argv = [a.decode() for a in proc.joinpath("cmdline").read_bytes().split(b"\0") if a]
    env = {}
    for item in proc.joinpath("environ").read_bytes().split(b"\0"):
        key, sep, value = item.decode(errors="replace").partition("=")
        if sep:
            env[key] = value
    return argv, env


@contextlib.contextmanager
def frozen(info: local.ClusterInfo, name: str) -> Iterator[None]:
    """``name`` stopped (SIGSTOP) inside the block, continued after it, whatever happens."""
    pid = info.pids[name]
    os.killpg(pid, signal.SIGSTOP)
    try:
        yield
    finally:
        os.killpg(pid, signal.SIGCONT)


@contextlib.contextmanager
def lost(info: local.ClusterInfo, name: str) -> Iterator[None]:
    """``name`` killed at once, as a machine that fails; started again after the block."""
    pid = info.pids[name]
    argv, env = _command_of(pid)
    os.killpg(pid, signal.SIGKILL)
    with contextlib.suppress(ChildProcessError):
        os.waitpid(pid, 0)
    try:
        yield
    finally:
        local._Starter(info).spawn(name, argv, env)  # the harness's own way of starting one


@contextlib.contextmanager
def node_lost(info: local.ClusterInfo, gpus: int) -> Iterator[None]:
    """The node dead with all its containers inside the block; back (Ready) after it."""
    if info.node_kind == "real":
        from node import realnode

        realnode.lose(info)
        try:
            yield
        finally:
            starter = local._Starter(info)
            realnode.bring_back(info, starter.spawn, starter.wait, gpus)
        return
    with lost(info, "process-node"):
        local.kill_orphan_containers(info.node_dir)  # its containers die with it
        yield


def restart(info: local.ClusterInfo, name: str, ready: Callable[[], bool], timeout: float) -> None:
    """Kill ``name`` and start it again the same way; returns once ``ready()`` holds."""
    with lost(info, name):
        pass
    local._Starter(info).wait(name, ready, timeout)
