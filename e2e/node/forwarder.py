"""A TCP forwarder from the node address to the API server on loopback.

Pods reach the API server as every cluster's pods do: through the ``kubernetes``
Service (``10.96.0.1:443``, ``KUBERNETES_SERVICE_HOST``), which kube-proxy sends to
the API server's advertised endpoint. The local API server listens on 127.0.0.1
only, and an Endpoints address may not be a loopback address, so the API server
advertises the node address (its lease reconciler keeps the ``kubernetes``
endpoints) and this forwarder, started and stopped by the harness, listens there on
the same port and copies bytes to 127.0.0.1. TLS passes through untouched: clients
still verify the API server's own certificate (it names ``10.96.0.1``) and present
their own tokens. It listens on the node address only, so nothing off this machine
can reach it.

CLI: ``python -m node.forwarder --listen ADDR:PORT --to ADDR:PORT [--owner DIR]``
(``--owner`` only marks the process as the cluster's, for the harness's bookkeeping).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import signal
import sys

CHUNK = 64 * 1024


async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        while data := await reader.read(CHUNK):
            writer.write(data)
            await writer.drain()
    except (ConnectionError, OSError):
        pass
    finally:
        with contextlib.suppress(Exception):
            if writer.can_write_eof():
                writer.write_eof()


async def _serve_one(
    client_reader: asyncio.StreamReader,
    client_writer: asyncio.StreamWriter,
    target: tuple[str, int],
) -> None:
    try:
        upstream_reader, upstream_writer = await asyncio.open_connection(*target)
    except OSError:
        client_writer.close()
        return
    await join((client_reader, client_writer), (upstream_reader, upstream_writer))


Stream = tuple[asyncio.StreamReader, asyncio.StreamWriter]


async def join(client: Stream, upstream: Stream) -> None:
    """Copy bytes both ways between two connections until both ends are done; close both."""
    try:
        await asyncio.gather(_pipe(client[0], upstream[1]), _pipe(upstream[0], client[1]))
    finally:
        for writer in (client[1], upstream[1]):
            with contextlib.suppress(Exception):
                writer.close()


async def forward(listen: tuple[str, int], target: tuple[str, int]) -> None:
    """Serve until SIGTERM or SIGINT."""
    server = await asyncio.start_server(
        lambda r, w: _serve_one(r, w, target), listen[0], listen[1], reuse_address=True
    )
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    print(f"forwarding {listen[0]}:{listen[1]} -> {target[0]}:{target[1]}", flush=True)
    async with server:
        await stop.wait()


def _address(text: str) -> tuple[str, int]:
    host, _, port = text.rpartition(":")
    return host, int(port)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="forwarder", description=__doc__.splitlines()[0])
    parser.add_argument("--listen", type=_address, required=True)
    parser.add_argument("--to", type=_address, required=True)
    parser.add_argument("--owner", default="", help="the cluster state dir (bookkeeping only)")
    args = parser.parse_args(argv)
    asyncio.run(forward(args.listen, args.to))
    return 0


if __name__ == "__main__":
    sys.exit(main())
