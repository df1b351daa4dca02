"""The trial pod's contract: what the Job renderer sets up and the collector relies on.

Both sides of a trial pod are written here once: the environment variables the
renderer sets on the collector sidecar and the primary container, the shared
metrics directory and the files in it (the stdout log, the collector's ready
marker), and the command wrapper that copies the trainer's output to that log.
The collector runs in every trial pod and imports only the standard library;
so does this module, so the renderer and the collector can share it without
either reaching into the other.

The wrapper. The trainer image may hold nothing but ``/bin/sh`` (no ``tee``, no
``mkfifo``, no bash), so the wrapper is a POSIX shell script using builtins only:

* the trainer runs in the background of a pipeline whose reader loop
  (``read``/``printf``) writes every line both to the container's stdout, so
  ``kubectl logs`` is unchanged, and to ``log_path`` on the shared volume;
* the trainer's exit status is saved to ``<log>.rc`` (POSIX sh has no
  ``PIPESTATUS``) and becomes the wrapper's own, so Job success and failure
  are exactly what they were;
* SIGTERM, SIGINT and SIGHUP are forwarded to the trainer (the shell is PID 1
  and would otherwise keep them, delaying stop until the grace period ends);
* ``<log>.state`` says ``running`` while the trainer runs and ``exited <rc>``
  once the pipeline has drained, which is the collector's cue to flush.

If the log cannot be written (no shared volume), the trainer is run directly.
stderr is merged into stdout, as Katib's wrapper does. Kubernetes expands
``$(VAR)`` in command and args; the script contains no ``$(`` or ``$$``, so
that expansion leaves it intact.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping, Sequence

#: Where the emptyDir shared by the primary container and the collector is mounted.
METRICS_DIR = "/kubesweep"
#: Where the stdout wrapper tees the primary container's output.
STDOUT_LOG = f"{METRICS_DIR}/stdout.log"
#: The collector's push endpoint on localhost, unless the source names another port.
DEFAULT_PUSH_PORT = 9477
#: The path the push endpoint serves.
PUSH_PATH = "/v1/report"
#: Where the kubelet reads the collector's termination message.
DEFAULT_TERMINATION_LOG = "/dev/termination-log"

# -- environment of the collector sidecar ------------------------------------
#: The source settings as JSON (``trialTemplate.metrics`` plus what the renderer adds).
ENV_COLLECTOR_CONFIG = "KUBESWEEP_COLLECTOR_CONFIG"
ENV_INTAKE_URL = "KUBESWEEP_INTAKE_URL"
ENV_TRIAL_TOKEN = "KUBESWEEP_TRIAL_TOKEN"
ENV_TRIAL_NAMESPACE = "KUBESWEEP_TRIAL_NAMESPACE"
ENV_TRIAL_UID = "KUBESWEEP_TRIAL_UID"
ENV_POD_NAME = "KUBESWEEP_POD_NAME"
ENV_STDOUT_LOG = "KUBESWEEP_STDOUT_LOG"
ENV_PUSH_PORT = "KUBESWEEP_PUSH_PORT"

# -- environment of the primary container (and, for identity, the collector) --
ENV_EXPERIMENT = "KUBESWEEP_EXPERIMENT"
ENV_TRIAL_NAME = "KUBESWEEP_TRIAL_NAME"
ENV_TRIAL_INDEX = "KUBESWEEP_TRIAL_INDEX"
#: The assignment as a JSON object.
ENV_PARAMS = "KUBESWEEP_PARAMS"
ENV_METRICS_DIR = "KUBESWEEP_METRICS_DIR"
ENV_METRICS_PATH = "KUBESWEEP_METRICS_PATH"
#: The push endpoint's base URL, for trainers that report by POST.
ENV_REPORT_URL = "KUBESWEEP_REPORT_URL"
#: A full push URL that overrides :data:`ENV_REPORT_URL` (set by hand, never rendered).
ENV_PUSH_URL = "KUBESWEEP_PUSH_URL"
#: The trial's own checkpoint directory (or object-store prefix), with checkpoints.
ENV_CHECKPOINT_DIR = "KUBESWEEP_CHECKPOINT_DIR"
#: The parent trial's checkpoint directory, when the trial continues a parent's training.
ENV_RESUME_FROM = "KUBESWEEP_RESUME_FROM"

# -- which pod of a multi-pod trial reports ------------------------------------
#: The rule, as JSON: a list of ``{"field": <downward API path>, "env": <variable>,
#: "equals": <value>}``. The renderer sets each ``env`` from its ``field`` with the
#: downward API; the pod reports only when every one equals its value.
ENV_REPORTING_POD = "KUBESWEEP_REPORTING_POD"
#: The variables holding the fields a reporting rule reads are named ``<prefix><i>``.
ENV_REPORTING_FIELD_PREFIX = "KUBESWEEP_REPORTING_FIELD_"

SHELL = "/bin/sh"
#: ``$0`` of the wrapper script, seen in ``ps``.
SCRIPT_NAME = "kubesweep-wrap"

WRAPPER_SCRIPT = """\
log=$1
shift
if ! true 2>/dev/null >>"$log"; then exec "$@"; fi
state=$log.state
pidf=$log.pid
echo running >"$state"
( "$@" 2>&1 &
  echo "$!" >"$pidf"
  wait "$!"
  echo "$?" >"$log.rc"
) | (
  while IFS= read -r line || [ -n "$line" ]; do
    printf '%s\\n' "$line"
    printf '%s\\n' "$line" >&3
  done 3>>"$log"
) &
pipe=$!
forward() { [ -r "$pidf" ] && read -r pid <"$pidf" && kill -"$1" "$pid" 2>/dev/null; }
trap 'forward TERM' TERM
trap 'forward INT' INT
trap 'forward HUP' HUP
while :; do
  wait "$pipe" && break
  kill -0 "$pipe" 2>/dev/null || break
done
rc=
[ -r "$log.rc" ] && read -r rc <"$log.rc"
[ -n "$rc" ] || rc=1
echo "exited $rc" >"$state"
exit "$rc"
"""


#: Written by the collector once it can no longer lose a SIGTERM; the sidecar's
#: startupProbe waits for it, so the trainer starts only after the collector is ready.
READY_FILE = "collector.ready"


def ready_path(log_path: str) -> str:
    """The collector's readiness marker, beside the trainer's stdout log."""
    return os.path.join(os.path.dirname(log_path) or ".", READY_FILE)


def state_path(log_path: str) -> str:
    """The file where the wrapper records ``running`` or ``exited <rc>``."""
    return f"{log_path}.state"


def exit_code(state: str) -> int | None:
    """The trainer's exit code from the state file's text, or ``None`` while it runs."""
    parts = state.split()
    if len(parts) == 2 and parts[0] == "exited" and parts[1].isdigit():
        return int(parts[1])
    return None


def wrap_command(
    command: Sequence[str], args: Sequence[str], log_path: str
) -> tuple[list[str], list[str]]:
    """The (command, args) that run ``command`` + ``args`` with output copied to ``log_path``.

    ``command`` must be the container's full command: the wrapper replaces it, and
    the image's entrypoint cannot be known here. ``log_path`` must be absolute and
    on a volume the collector shares.
    """
    if not command:
        raise ValueError(
            "the primary container must set command (the image entrypoint cannot be "
            "wrapped); set command and args explicitly"
        )
    if not log_path.startswith("/"):
        raise ValueError(f"log path {log_path!r} must be absolute")
    return [SHELL, "-c", WRAPPER_SCRIPT, SCRIPT_NAME], [log_path, *command, *args]


def reporting_rule_text(conditions: Sequence[tuple[str, str]]) -> str:
    """The ``KUBESWEEP_REPORTING_POD`` value for ``(field path, value)`` conditions."""
    rule = [
        {"field": field, "env": f"{ENV_REPORTING_FIELD_PREFIX}{index}", "equals": value}
        for index, (field, value) in enumerate(conditions)
    ]
    return json.dumps(rule, sort_keys=True, separators=(",", ":"))


def not_reporting_because(env: Mapping[str, str]) -> str | None:
    """Why this pod does not report its trial's metrics, or ``None`` when it does.

    In a multi-pod trial every pod has a collector (each rank's trainer may write
    its metrics, or POST them to localhost), but only one pod's series is the
    trial's: the one whose labels and annotations, read through the downward API,
    match the rule. A pod without a rule reports (a single-pod trial). A rule that
    cannot be read reports too: a silent trial would be worse than a noisy one.
    """
    text = env.get(ENV_REPORTING_POD, "")
    if not text.strip():
        return None
    try:
        rule = json.loads(text)
    except ValueError:
        return None
    if not isinstance(rule, list):
        return None
    for condition in rule:
        if not isinstance(condition, dict):
            continue
        name, wanted = condition.get("env"), condition.get("equals")
        if not isinstance(name, str) or not isinstance(wanted, str):
            continue
        found = env.get(name, "")
        if found != wanted:
            field = condition.get("field") or name
            return f"{field} is {found!r}, the reporting pod's is {wanted!r}"
    return None
