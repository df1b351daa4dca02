"""Pure rendering of every manifest the operator writes: Trials, and the workloads that run them.

No Kubernetes client, kopf or HTTP here (an import-linter contract checks it):
the operator renders with :func:`trial_manifest` and :func:`render_trial` and then
creates what it got, so every decision about an object's shape is testable as a
plain function. What the Job contains and why is written down in
``docs/trial-jobs.md``; what the collector in the pod relies on is
:mod:`kubesweep.podcontract`.
"""

from kubesweep.rendering.identity import (
    LABEL_EXPERIMENT,
    LABEL_MANAGED_BY,
    LABEL_QUEUE,
    LABEL_TRIAL,
    labels_for,
    owner_reference,
)
from kubesweep.rendering.installation import (
    COLLECTOR_NAME,
    METRICS_DIR,
    METRICS_VOLUME,
    STDOUT_LOG,
    CommandWrapper,
    RenderSettings,
)
from kubesweep.rendering.job import COLLECTOR_CONFIG_ENV, render_trial
from kubesweep.rendering.placeholders import (
    RenderError,
    check_placeholders,
    format_value,
    known_placeholders,
)
from kubesweep.rendering.pod import assignment, collector_config
from kubesweep.rendering.trial import trial_manifest
from kubesweep.rendering.validate import check_template, param_env_name
from kubesweep.rendering.workloads import (
    JOB_KIND,
    JOBSET_API_VERSION,
    pod_templates,
    workload_field,
    workload_kind,
)

__all__ = [
    "COLLECTOR_CONFIG_ENV",
    "COLLECTOR_NAME",
    "JOBSET_API_VERSION",
    "JOB_KIND",
    "LABEL_EXPERIMENT",
    "LABEL_MANAGED_BY",
    "LABEL_QUEUE",
    "LABEL_TRIAL",
    "METRICS_DIR",
    "METRICS_VOLUME",
    "STDOUT_LOG",
    "CommandWrapper",
    "RenderError",
    "RenderSettings",
    "assignment",
    "check_placeholders",
    "check_template",
    "collector_config",
    "format_value",
    "known_placeholders",
    "labels_for",
    "owner_reference",
    "param_env_name",
    "pod_templates",
    "render_trial",
    "trial_manifest",
    "workload_field",
    "workload_kind",
]
