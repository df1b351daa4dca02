"""Startup, liveness and readiness probes, as a kubelet runs them.

A startup probe gates ``started`` and the other two; readiness gates
``ready``; a failed liveness or startup probe restarts the container (the
caller kills it and its restart policy decides). ``exec`` runs inside the
container's mount namespace (``nsenter``, as root), ``httpGet`` and
``tcpSocket`` reach the pod's IP, and ``grpc`` is a TCP connect.
"""

from __future__ import annotations

import os
import socket
import ssl
import subprocess
import time
import urllib.request
from collections.abc import Callable

from cluster.kube import JSON
from node.processnode.container import Container, ProbeState
from node.processnode.host import POD_IP

KINDS = ("startup", "liveness", "readiness")


def initial_probes(spec: JSON) -> dict[str, ProbeState]:
    """The probes of a container run that starts now, each due after its initial delay."""
    t0 = time.monotonic()
    return {
        kind: ProbeState(next_at=t0 + float(spec[f"{kind}Probe"].get("initialDelaySeconds", 0)))
        for kind in KINDS
        if spec.get(f"{kind}Probe")
    }


def run_probes(containers: list[Container], failed: Callable[[Container, str], None]) -> bool:
    """Run the probes that are due; True when a container's readiness changed.

    ``failed(container, kind)`` is called when a liveness or startup probe
    reaches its failure threshold; it must stop the container.
    """
    changed = False
    for c in containers:
        for kind, st in c.probes.items():
            if not c.running or time.monotonic() < st.next_at:
                continue
            if kind == "startup" and st.ok:
                continue
            if kind != "startup" and not c.started_ok:
                continue
            spec = c.spec[f"{kind}Probe"]
            st.next_at = time.monotonic() + float(spec.get("periodSeconds", 10))
            if probe(c, spec):
                st.successes, st.failures = st.successes + 1, 0
                if not st.ok and st.successes >= int(spec.get("successThreshold", 1)):
                    st.ok, changed = True, True
                continue
            st.successes, st.failures = 0, st.failures + 1
            if st.failures < int(spec.get("failureThreshold", 3)):
                continue
            if kind == "readiness":
                changed = changed or st.ok
                st.ok = False
            elif c.proc is not None:  # liveness/startup failed: kill, restart per policy
                failed(c, kind)
                changed = True
    return changed


def probe(c: Container, spec: JSON) -> bool:
    """One try of the probe ``spec`` against container ``c``: whether it succeeded."""
    timeout = float(spec.get("timeoutSeconds", 1))

    def port_of(p: int | str) -> int:
        if isinstance(p, int) or str(p).isdigit():
            return int(p)
        for cp in c.spec.get("ports") or []:
            if cp.get("name") == p:
                return int(cp["containerPort"])
        raise ValueError(f"no port named {p}")

    try:
        if "exec" in spec:
            cmd = list(spec["exec"].get("command") or [])
            if os.geteuid() == 0 and c.proc is not None:  # inside the container's mounts
                cmd = ["nsenter", "-t", str(c.proc.pid), "-m", "--", *cmd]
            res = subprocess.run(cmd, env=c.env, capture_output=True, timeout=timeout, check=False)
            return res.returncode == 0
        if "httpGet" in spec:
            h = spec["httpGet"]
            scheme = str(h.get("scheme", "HTTP")).lower()
            url = f"{scheme}://{h.get('host') or POD_IP}:{port_of(h['port'])}{h.get('path', '/')}"
            req = urllib.request.Request(
                url, headers={x["name"]: x["value"] for x in h.get("httpHeaders") or []}
            )
            ctx = ssl._create_unverified_context() if scheme == "https" else None
            with urllib.request.urlopen(req, timeout=timeout, context=ctx) as r:
                return 200 <= int(r.status) < 400
        sock: JSON = spec.get("tcpSocket") or spec.get("grpc") or {}
        port, host = sock.get("port", 0), sock.get("host") or POD_IP
        with socket.create_connection((host, port_of(port)), timeout=timeout):
            return True
    except Exception:
        return False
