"""The collector sidecar: reads a trial's metrics and delivers them to the operator.

The I/O edge around the pure :mod:`kubesweep.metrics`: it tails files, scrapes
localhost, serves a localhost push endpoint, POSTs batches to the operator's
intake and writes the final summary into its termination message. It imports
the standard library only, so it runs in a minimal image and starts fast.

:func:`wrap_command` is what the Job renderer calls to route the trainer's
stdout to the collector; :mod:`kubesweep.collector.config` lists the sidecar's
environment.
"""

from kubesweep.collector.config import CONFIG_ENV, CollectorConfig
from kubesweep.podcontract import wrap_command

__all__ = ["CONFIG_ENV", "CollectorConfig", "wrap_command"]
