"""The suggestion benchmark: kubesweep's algorithms against peer libraries, side by side.

``python -m bench.suggest.run`` (``make bench-suggest``) measures quality on
problems with known optima and on real model tuning, multi-fidelity budget
use, and suggestion latency, and writes a section of ``docs/benchmarks.md``.
"""
