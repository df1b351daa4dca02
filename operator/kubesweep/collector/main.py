"""The collector sidecar's process: read, reduce, push, and leave a summary behind.

One loop polls the configured source (and the push endpoint) every
``KUBESWEEP_POLL_SECONDS``, feeds what it reads to a bounded
:class:`~kubesweep.metrics.reduce.SeriesReducer` and to the background
:class:`~kubesweep.collector.sender.Sender`. It stops on SIGTERM (kubelet
stops native sidecars once the trainer has exited) and finishes early when the
wrapper's state file says the trainer exited. Finishing means: read the source
to its end, write the summary to the termination message *first* (so a SIGKILL
during the last push loses nothing), then push the rest and a final batch
within ``KUBESWEEP_SHUTDOWN_SECONDS``, and exit 0.

As a native sidecar (``restartPolicy: Always``) it must not exit before it is
told to, or the kubelet restarts it and it reads everything again; so after an
early finish it idles until SIGTERM, unless ``KUBESWEEP_EXIT_ON_DONE`` is set.

Only the standard library is imported on this path (no pydantic, no numpy),
which keeps the sidecar image and its start-up small.
"""

from __future__ import annotations

import logging
import os
import secrets
import signal
import sys
import threading
from collections.abc import Mapping
from types import FrameType

from kubesweep.collector.config import CollectorConfig, ConfigError
from kubesweep.collector.push import PushServer
from kubesweep.collector.sender import Sender
from kubesweep.collector.sources import (
    JsonFileSource,
    PrometheusSource,
    Source,
    TextFileSource,
    TfEventSource,
)
from kubesweep.metrics.observation import Parsed
from kubesweep.metrics.reduce import SeriesReducer, best_for
from kubesweep.metrics.text import text_format
from kubesweep.metrics.wire import Summary, encode_summary
from kubesweep.podcontract import exit_code, ready_path, state_path

logger = logging.getLogger("kubesweep.collector")


def build_source(config: CollectorConfig) -> Source | None:
    """The reader for ``config.source``; ``None`` for push (the endpoint is the source)."""
    if config.source == "stdout":
        return TextFileSource(config.stdout_log, text_format(config.filters))
    if config.source == "file":
        assert config.path is not None
        return TextFileSource(config.path, text_format(config.filters))
    if config.source == "json":
        assert config.path is not None
        return JsonFileSource(config.path)
    if config.source == "tfevent":
        assert config.path is not None
        return TfEventSource(config.path)
    if config.source == "prometheus":
        assert config.port is not None
        return PrometheusSource(
            config.port,
            config.scrape_path,
            config.interval_seconds,
            step_metric=config.step_metric,
            names=config.keep_names,
        )
    return None


def trainer_exited(config: CollectorConfig) -> bool:
    """Whether the wrapper's state file says the trainer has exited."""
    try:
        with open(state_path(config.stdout_log), encoding="utf-8") as handle:
            return exit_code(handle.read()) is not None
    except OSError:
        return False


def write_termination_message(path: str, text: str) -> bool:
    """Write the summary where the kubelet reads the termination message."""
    try:
        with open(path, "w", encoding="ascii") as handle:
            handle.write(text)
    except OSError as error:
        logger.warning("cannot write termination message to %s: %s", path, error)
        return False
    return True


class Collector:
    """The collector's state: sources, reducer, sender; driven by :meth:`run`."""

    def __init__(self, config: CollectorConfig, stop: threading.Event) -> None:
        self.config = config
        self.stop = stop
        objective = config.objective_metric
        strategy = config.objective_strategy or "latest"
        self.reducer = SeriesReducer(
            priority=[objective] if objective else [],
            best={objective: best_for(strategy)} if objective else {},
        )
        self.dropped = 0
        self.sources: list[Source] = []
        source = build_source(config)
        if source is not None:
            self.sources.append(source)
        self.push: PushServer | None = None
        if config.push_port:
            try:
                self.push = PushServer(config.push_port)
            except OSError as error:
                level = logging.ERROR if config.source == "push" else logging.WARNING
                logger.log(
                    level, "push endpoint unavailable on port %d: %s", config.push_port, error
                )
            else:
                self.sources.append(self.push)
        self.sender: Sender | None = None
        if config.intake_url and config.reporting:
            self.sender = Sender(
                config.intake_url,
                config.token,
                trial=config.trial_name,
                namespace=config.trial_namespace,
                uid=config.trial_uid,
                boot=secrets.token_hex(8),
                flush_seconds=config.flush_seconds,
            )

    def take(self, parsed: Parsed) -> None:
        """Reduce and queue what a source produced (another pod's series is the trial's)."""
        if not self.config.reporting:
            return
        keep = self.config.keep_names
        accepted = [
            o
            for o in parsed.observations
            if (keep is None or o.name in keep) and self.reducer.add(o)
        ]
        self.dropped += parsed.dropped
        if self.sender is not None and (accepted or parsed.dropped):
            self.sender.submit(accepted, parsed.dropped)

    def poll(self, *, final: bool = False) -> None:
        """Read every source once."""
        for source in self.sources:
            try:
                self.take(source.poll(final=final))
            except Exception:
                logger.exception("reading metrics failed; will try again")

    def summary(self) -> Summary:
        """What the termination message and the final batch carry."""
        return Summary.of(self.reducer, self.config.objective_metric, dropped=self.dropped)

    def finish(self) -> None:
        """Drain, write the termination message, push the rest."""
        self.poll(final=True)
        if not self.config.reporting:
            return  # no summary: the operator reads the reporting pod's
        summary = self.summary()
        text = encode_summary(summary, self.config.termination_limit)
        if not write_termination_message(self.config.termination_log, text):
            print(text, flush=True)
        logger.info(
            "summary: %d observations of %d metrics, %d dropped",
            summary.observed,
            len(summary.metrics),
            summary.dropped,
        )
        if self.sender is not None:
            delivered = self.sender.close(summary, self.config.shutdown_seconds)
            logger.info(
                "intake: %d observations sent, final batch %s",
                self.sender.sent,
                "delivered" if delivered else "not delivered (summary is in the message)",
            )

    def run(self) -> int:
        """Collect until stopped; always returns 0 (a collector never fails a trial)."""
        if self.push is not None:
            self.push.start()
        if self.sender is not None:
            self.sender.start()
        finished = False
        try:
            while not self.stop.is_set():
                self.poll()
                if trainer_exited(self.config):
                    self.finish()
                    finished = True
                    if self.config.exit_on_done:
                        return 0
                    self.stop.wait()
                    break
                self.stop.wait(self.config.poll_seconds)
            if not finished:
                self.finish()
        finally:
            if self.push is not None:
                self.push.stop()
        return 0


def _mark_ready(config: CollectorConfig) -> None:
    """Tell the startupProbe that a SIGTERM can no longer cost the summary."""
    try:
        with open(ready_path(config.stdout_log), "w", encoding="utf-8") as handle:
            handle.write("ready\n")
    except OSError:
        logger.warning("cannot write the readiness marker; the trainer starts regardless")


def main(env: Mapping[str, str] | None = None) -> int:
    """Entry point of ``kubesweep-collector``."""
    environment = os.environ if env is None else env
    logging.basicConfig(
        level=environment.get("KUBESWEEP_LOG_LEVEL", "INFO").upper(),
        stream=sys.stderr,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    try:
        config = CollectorConfig.from_env(environment)
    except ConfigError as error:
        logger.error("bad configuration: %s", error)
        return 2
    stop = threading.Event()

    def request_stop(_signum: int, _frame: FrameType | None) -> None:
        stop.set()

    signal.signal(signal.SIGTERM, request_stop)
    signal.signal(signal.SIGINT, request_stop)
    # The push endpoint is bound while the collector is built: only then may the
    # trainer start, or its first kubesweep.report() would find nobody listening.
    collector = Collector(config, stop)
    _mark_ready(config)
    if config.not_reporting is not None:
        logger.info(
            "not reporting for trial %s: %s; another pod's metrics are the trial's",
            config.trial_name or "?",
            config.not_reporting,
        )
    else:
        logger.info("collecting %s metrics for trial %s", config.source, config.trial_name or "?")
    return collector.run()


if __name__ == "__main__":
    sys.exit(main())
