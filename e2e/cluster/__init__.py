"""The local Kubernetes cluster harness: binaries built from Go modules, started on loopback.

``python -m cluster up|down|status`` (with ``e2e/`` on ``PYTHONPATH``); see ``local.py``.
"""
