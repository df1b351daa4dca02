"""Pure rendering of Trials into ``batch/v1`` Jobs.

No Kubernetes client, kopf or HTTP here (an import-linter contract checks it):
the operator renders with :func:`render_trial` and then creates what it got, so
every decision about the Job's shape is testable as a plain function. What the
Job contains and why is written down in ``docs/trial-jobs.md``.
"""

from kubesweep.rendering.job import (
    COLLECTOR_CONFIG_ENV,
    LABEL_EXPERIMENT,
    LABEL_MANAGED_BY,
    LABEL_QUEUE,
    LABEL_TRIAL,
    assignment,
    collector_config,
    labels_for,
    owner_reference,
    render_trial,
    token_secret,
    token_secret_name,
)
from kubesweep.rendering.placeholders import (
    RenderError,
    check_placeholders,
    format_value,
    known_placeholders,
)
from kubesweep.rendering.settings import (
    COLLECTOR_NAME,
    METRICS_DIR,
    METRICS_VOLUME,
    STDOUT_LOG,
    CommandWrapper,
    RenderSettings,
    TokenMode,
)
from kubesweep.rendering.validate import check_template, param_env_name

__all__ = [
    "COLLECTOR_CONFIG_ENV",
    "COLLECTOR_NAME",
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
    "TokenMode",
    "assignment",
    "check_placeholders",
    "check_template",
    "collector_config",
    "format_value",
    "known_placeholders",
    "labels_for",
    "owner_reference",
    "param_env_name",
    "render_trial",
    "token_secret",
    "token_secret_name",
]
