"""Search algorithms and stopping rules: pure functions of a request's content.

Each module cites its paper and lists its settings with defaults; the registry
(:mod:`kubesweep.suggestion.registry`) maps algorithm names to their factories.
Nothing here performs I/O (an import-linter contract keeps it so).
"""
