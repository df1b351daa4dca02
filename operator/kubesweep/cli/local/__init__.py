"""``kubesweep run``: an Experiment executed on this machine instead of a cluster.

The runner executes the very plans the operator executes
(:func:`kubesweep.planning.plan_experiment`), derives trial status with the
operator's :func:`~kubesweep.planning.derive_trial_status`, asks the suggestion
algorithms in process (:mod:`kubesweep.suggestion.registry`), renders each
trial with the Job renderer and reads metrics with the collector's own source
readers. Only the executor differs: processes instead of Jobs, a SQLite file
instead of the API server.
"""
