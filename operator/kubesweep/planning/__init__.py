"""Pure decisions of the operator: what an Experiment needs next, and what a Trial is.

Everything here is a function of its inputs (spec, observed children, the
clock passed in as ``now``); nothing talks to Kubernetes or HTTP. The operator
feeds observations in and carries the returned values out, so every decision
can be tested as a table, and a restart at any instant replays the same
decisions from the same observations.
"""

from kubesweep.planning.conditions import merge_conditions
from kubesweep.planning.gpu import gpus_per_pod, pod_spec_gpus
from kubesweep.planning.plan import (
    FINAL_REASONS,
    End,
    NewTrial,
    Plan,
    StopOrder,
    best_trial,
    plan_experiment,
    stop_orders,
)
from kubesweep.planning.requests import (
    observed_trial,
    search_space,
    stop_request,
    suggest_request,
)
from kubesweep.planning.trial_status import derive_trial_status
from kubesweep.planning.views import (
    PodView,
    StoredTrial,
    SuggestionHealth,
    TrialMetrics,
    TrialView,
    trial_view,
)

__all__ = [
    "FINAL_REASONS",
    "End",
    "NewTrial",
    "Plan",
    "PodView",
    "StopOrder",
    "StoredTrial",
    "SuggestionHealth",
    "TrialMetrics",
    "TrialView",
    "best_trial",
    "derive_trial_status",
    "gpus_per_pod",
    "merge_conditions",
    "observed_trial",
    "plan_experiment",
    "pod_spec_gpus",
    "search_space",
    "stop_orders",
    "stop_request",
    "suggest_request",
    "trial_view",
]
