"""Run a command in a network namespace of its own, joined to this machine's loopback.

For a controller that binds a server on every interface with no flag to narrow it
(training-operator's webhook server: ``webhook.Options{Port}``, no host). In a
network namespace of its own, "every interface" is its own loopback: nothing on
or off this machine reaches that server. The command still needs the API server,
and the harness needs its health probe, both on this machine's loopback; this
process joins the two namespaces for exactly the ports named:

- ``--out PORT``: the command's ``127.0.0.1:PORT`` reaches this machine's (the API
  server, at the address its kubeconfig names);
- ``--in PORT``: this machine's ``127.0.0.1:PORT`` reaches the command's (its health
  probe), and nothing else of it.

It does so with one process in both: it listens for ``--out`` inside the new
namespace and for ``--in`` outside it, and makes each upstream socket in the other
one (a socket stays in the namespace it was made in).

``--tmp-layer DIR`` also gives the command a ``/tmp`` of its own, read-only: the
machine's, with DIR's files on top, in a private mount namespace (a tmpfs holds
the layer, so the overlay never lies inside one of its own layers). For a program
that looks for files at a fixed ``/tmp`` path; the machine's ``/tmp`` is not touched.

Both namespaces need root (``CAP_SYS_ADMIN``), and ``ip`` and ``mount`` on the PATH.
The command runs as a child; a signal to this process goes to it, and this process
exits with its status.

CLI: ``python -m cluster.netns [--out PORT]... [--in PORT]... [--tmp-layer DIR] -- ARGV...``
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import ctypes
import os
import shutil
import signal
import socket
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

from node.forwarder import join

CLONE_NEWNS = 0x00020000
CLONE_NEWNET = 0x40000000
LOOPBACK = "127.0.0.1"


def _libc_call(name: str, *args: int) -> None:
    libc = ctypes.CDLL(None, use_errno=True)
    if getattr(libc, name)(*args) != 0:
        errno = ctypes.get_errno()
        raise OSError(errno, f"{name}: {os.strerror(errno)} (a network namespace needs root)")


def _listen(port: int) -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((LOOPBACK, port))
    sock.listen(128)
    sock.setblocking(False)
    return sock


def _private_tmp(layer: Path, stage: Path) -> None:
    """Over ``/tmp``, read-only: ``layer``'s files (copied to a tmpfs at ``stage``) on top."""
    subprocess.run(["mount", "--make-rprivate", "/"], check=True)
    stage.mkdir(parents=True, exist_ok=True)
    subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=4m,mode=0700", "kubesweep", str(stage)], check=True
    )
    shutil.copytree(layer, stage, dirs_exist_ok=True)
    options = f"lowerdir={stage}:/tmp"
    subprocess.run(["mount", "-t", "overlay", "kubesweep-tmp", "-o", options, "/tmp"], check=True)


class Joined:
    """The command's namespace and this machine's, and which one new sockets are made in."""

    def __init__(self) -> None:
        self.host = os.open("/proc/self/ns/net", os.O_RDONLY)
        _libc_call("unshare", CLONE_NEWNET | CLONE_NEWNS)
        self.inner = os.open("/proc/self/ns/net", os.O_RDONLY)
        subprocess.run(["ip", "link", "set", "lo", "up"], check=True)

    def enter(self, which: int) -> None:
        _libc_call("setns", which, CLONE_NEWNET)

    def socket_in(self, which: int) -> socket.socket:
        """A new TCP socket of ``which`` namespace; this process stays in the host's."""
        self.enter(which)
        try:
            return socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        finally:
            self.enter(self.host)


async def _relay(
    listener: socket.socket, port: int, make: Callable[[], socket.socket]
) -> asyncio.Server:
    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        upstream = make()
        upstream.setblocking(False)
        try:
            await asyncio.get_running_loop().sock_connect(upstream, (LOOPBACK, port))
            other = await asyncio.open_connection(sock=upstream)
        except OSError:
            upstream.close()
            writer.close()
            return
        await join((reader, writer), other)

    return await asyncio.start_server(serve, sock=listener)


async def _run(
    joined: Joined,
    outs: dict[int, socket.socket],
    ins: dict[int, socket.socket],
    child: subprocess.Popen[bytes],
) -> int:
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        loop.add_signal_handler(signum, child.send_signal, signum)
    servers = [
        await _relay(sock, port, lambda: joined.socket_in(joined.host))
        for port, sock in outs.items()
    ] + [
        await _relay(sock, port, lambda: joined.socket_in(joined.inner))
        for port, sock in ins.items()
    ]
    code = await loop.run_in_executor(None, child.wait)
    for server in servers:
        server.close()
    return code


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="netns", description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=int, action="append", default=[], metavar="PORT")
    parser.add_argument("--in", dest="ins", type=int, action="append", default=[], metavar="PORT")
    parser.add_argument("--tmp-layer", type=Path)
    parser.add_argument("command", nargs=argparse.REMAINDER)
    args = parser.parse_args(argv)
    command = args.command[1:] if args.command[:1] == ["--"] else args.command
    if not command:
        parser.error("no command given")
    joined = Joined()
    if args.tmp_layer is not None:
        _private_tmp(args.tmp_layer, args.tmp_layer.parent / f"{args.tmp_layer.name}.mnt")
    outs = {port: _listen(port) for port in args.out}
    child = subprocess.Popen(command)
    joined.enter(joined.host)
    ins = {port: _listen(port) for port in args.ins}
    with contextlib.suppress(KeyboardInterrupt):
        return asyncio.run(_run(joined, outs, ins, child))
    return child.wait()


if __name__ == "__main__":
    sys.exit(main())
