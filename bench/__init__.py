"""Benchmarks of kubesweep, each in its own subpackage; run through ``make bench-*`` targets.

Benchmarks live outside the installed packages because they need the peers
(Optuna, scikit-optimize, hyperopt) and plotting, which kubesweep never needs at
run time (they are the ``bench`` extra of pyproject.toml).
"""
