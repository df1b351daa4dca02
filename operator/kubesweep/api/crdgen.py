"""Generate the CustomResourceDefinitions in ``crds/`` from the API models.

The models are the single source of the schema: pydantic produces a JSON
schema (with each model's CEL rules attached by :class:`ApiModel`), and this
module turns it into a *structural* OpenAPI v3 schema as the API server demands:
references inlined, ``null`` alternatives dropped (an absent field is the
Kubernetes way to say "unset"), scalar unions marked as preserving unknown
fields, defaults kept, and the embedded JobSpec left open except for the
container names that a CEL rule reads.

Run ``python -m kubesweep.api.crdgen crds`` (``make crds``); a test fails when
the committed files differ from what this produces.
"""

from __future__ import annotations

import copy
import sys
from pathlib import Path
from typing import Any

import yaml

from kubesweep.api.experiment import ExperimentSpec, immutability_rules
from kubesweep.api.status import ExperimentStatus, TrialStatus
from kubesweep.api.trial import GROUP, VERSION, TrialSpec

Schema = dict[str, Any]

_DROPPED_KEYS = frozenset({"title", "$defs", "additionalProperties_false", "examples"})


def _resolve(node: Schema, defs: dict[str, Schema]) -> Schema:
    ref = node.get("$ref")
    if ref is None:
        return node
    target = copy.deepcopy(defs[ref.rsplit("/", 1)[-1]])
    merged = {**target, **{k: v for k, v in node.items() if k != "$ref"}}
    if "x-kubernetes-validations" in target and "x-kubernetes-validations" in node:
        merged["x-kubernetes-validations"] = (
            target["x-kubernetes-validations"] + node["x-kubernetes-validations"]
        )
    return merged


def _is_null(node: Schema) -> bool:
    return node.get("type") == "null"


# One branch per JSON-schema keyword that Kubernetes spells differently: the whole
# translation reads best as one table-like function.
def structural(node: Schema, defs: dict[str, Schema]) -> Schema:  # noqa: C901
    """Turn one pydantic JSON-schema node into a structural Kubernetes schema node."""
    node = _resolve(node, defs)
    if "anyOf" in node and "properties" in node:
        # Alternatives of a typed object (structural rules): kept as they are.
        rest = {k: v for k, v in node.items() if k != "anyOf"}
        return {**structural(rest, defs), "anyOf": node["anyOf"]}
    if "anyOf" in node:
        options = [o for o in node["anyOf"] if not _is_null(o)]
        rest = {k: v for k, v in node.items() if k != "anyOf"}
        if len(options) == 1:
            inner = _resolve(options[0], defs)
            return structural({**inner, **rest}, defs)
        # A union of scalars (a parameter value): any JSON scalar is accepted here,
        # and the Python model and CEL rules narrow it.
        rest.pop("default", None)
        return {**_annotations(rest), "x-kubernetes-preserve-unknown-fields": True}

    out: Schema = {}
    for key, value in node.items():
        if key in _DROPPED_KEYS:
            continue
        if key == "properties":
            out["properties"] = {name: structural(sub, defs) for name, sub in value.items()}
        elif key == "items":
            out["items"] = structural(value, defs)
        elif key == "additionalProperties":
            if isinstance(value, dict) and value:
                out["additionalProperties"] = structural(value, defs)
            elif value is True:
                out["x-kubernetes-preserve-unknown-fields"] = True
        elif key == "const":
            out["enum"] = [value]
        elif key == "exclusiveMinimum":
            out["minimum"] = value
            out["exclusiveMinimum"] = True
        elif key == "exclusiveMaximum":
            out["maximum"] = value
            out["exclusiveMaximum"] = True
        elif key == "default" and value is None:
            continue
        else:
            out[key] = value
    if out.get("type") == "object" and "properties" in out:
        out.pop("additionalProperties", None)
    if (
        out.get("type") == "object"
        and "properties" not in out
        and "additionalProperties" not in out
    ):
        out["x-kubernetes-preserve-unknown-fields"] = True
    if "enum" in out and "type" not in out:
        out["type"] = "string"
    return out


def _annotations(node: Schema) -> Schema:
    return {k: v for k, v in node.items() if k in ("description",)}


def model_schema(model: type[Any]) -> Schema:
    """The structural schema of a pydantic model (by alias, validation mode)."""
    raw = model.model_json_schema(by_alias=True, mode="validation")
    defs = raw.get("$defs", {})
    return structural(raw, defs)


# The parts of a JobSpec that CEL rules read; everything else passes through.
_JOB_SPEC_SCHEMA: Schema = {
    "type": "object",
    "description": "A batch/v1 JobSpec. ${params.NAME} and ${trial.name} are substituted in "
    "the primary container's command, args and env.",
    "x-kubernetes-preserve-unknown-fields": True,
    "required": ["template"],
    "properties": {
        "parallelism": {"type": "integer", "minimum": 0},
        "completions": {"type": "integer", "minimum": 0},
        "completionMode": {"type": "string", "enum": ["NonIndexed", "Indexed"]},
        "template": {
            "type": "object",
            "x-kubernetes-preserve-unknown-fields": True,
            "required": ["spec"],
            "properties": {
                "spec": {
                    "type": "object",
                    "x-kubernetes-preserve-unknown-fields": True,
                    "required": ["containers"],
                    "properties": {
                        "restartPolicy": {"type": "string", "enum": ["Never", "OnFailure"]},
                        "containers": {
                            "type": "array",
                            "minItems": 1,
                            "maxItems": 32,
                            "items": {
                                "type": "object",
                                "x-kubernetes-preserve-unknown-fields": True,
                                "required": ["name"],
                                "properties": {"name": {"type": "string", "maxLength": 63}},
                            },
                        },
                    },
                },
            },
        },
    },
}


# The parts of a JobSetSpec that CEL rules read; everything else passes through.
_JOBSET_SPEC_SCHEMA: Schema = {
    "type": "object",
    "description": "A jobset.x-k8s.io/v1alpha2 JobSetSpec. Placeholders are substituted in the "
    "primary container of every replicated Job's pod template.",
    "x-kubernetes-preserve-unknown-fields": True,
    "required": ["replicatedJobs"],
    "properties": {
        "replicatedJobs": {
            "type": "array",
            "minItems": 1,
            "maxItems": 16,
            "items": {
                "type": "object",
                "x-kubernetes-preserve-unknown-fields": True,
                "required": ["name", "template"],
                "properties": {
                    "name": {"type": "string", "minLength": 1, "maxLength": 63},
                    "replicas": {"type": "integer", "minimum": 0},
                    "template": {
                        "type": "object",
                        "x-kubernetes-preserve-unknown-fields": True,
                        "required": ["spec"],
                        "properties": {
                            "spec": {
                                k: copy.deepcopy(v)
                                for k, v in _JOB_SPEC_SCHEMA.items()
                                if k != "description"
                            }
                        },
                    },
                },
            },
        },
    },
}


def _defaults_for_nested_objects(schema: Schema, model: type[Any]) -> None:
    """Give object-typed fields with a default factory their full default object."""
    for name, field in model.model_fields.items():
        alias = field.alias or name
        prop = schema.get("properties", {}).get(alias)
        if prop is None:
            continue
        annotation = field.annotation
        if isinstance(annotation, type) and hasattr(annotation, "model_fields"):
            if field.default_factory is not None:
                # The API server checks a default against the object's CEL rules as it is,
                # without applying nested defaults first, so the default is spelled out.
                prop["default"] = annotation().to_wire()
            _defaults_for_nested_objects(prop, annotation)


def experiment_spec_schema() -> Schema:
    """The Experiment spec schema with JobSpec, defaults and immutability rules."""
    spec = model_schema(ExperimentSpec)
    _defaults_for_nested_objects(spec, ExperimentSpec)
    spec["properties"]["trialTemplate"]["properties"]["job"] = _JOB_SPEC_SCHEMA
    spec["properties"]["trialTemplate"]["properties"]["jobSet"] = _JOBSET_SPEC_SCHEMA
    for field, rule in immutability_rules().items():
        prop = spec["properties"][field]
        prop.setdefault("x-kubernetes-validations", []).append(
            {"rule": rule.cel, "message": rule.message}
        )
    return spec


def _version(spec: Schema, status: Schema, columns: list[Schema]) -> Schema:
    return {
        "name": VERSION,
        "served": True,
        "storage": True,
        "subresources": {"status": {}},
        "additionalPrinterColumns": columns,
        "schema": {
            "openAPIV3Schema": {
                "type": "object",
                "required": ["spec"],
                "properties": {
                    "apiVersion": {"type": "string"},
                    "kind": {"type": "string"},
                    "metadata": {"type": "object"},
                    "spec": spec,
                    "status": status,
                },
            }
        },
    }


def _crd(kind: str, plural: str, short_names: list[str], version: Schema) -> Schema:
    return {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {
            "name": f"{plural}.{GROUP}",
            "labels": {"app.kubernetes.io/part-of": "kubesweep"},
        },
        "spec": {
            "group": GROUP,
            "scope": "Namespaced",
            "names": {
                "kind": kind,
                "listKind": f"{kind}List",
                "plural": plural,
                "singular": kind.lower(),
                "shortNames": short_names,
                "categories": ["kubesweep"],
            },
            "versions": [version],
        },
    }


def experiment_crd() -> Schema:
    """The Experiment CustomResourceDefinition."""
    status = model_schema(ExperimentStatus)
    columns: list[Schema] = [
        {"name": "Phase", "type": "string", "jsonPath": ".status.phase"},
        {
            # A string the operator writes, so that it has a value with several
            # objectives too (each one's best on the front), where no trial is best.
            "name": "Best",
            "type": "string",
            "jsonPath": ".status.bestSummary",
            "description": "Best objective so far; with several objectives, each one's best "
            "value on the Pareto front and the front's size",
        },
        {
            "name": "Front",
            "type": "integer",
            "jsonPath": ".status.paretoFrontSize",
            "description": "Trials on the Pareto front (with several objectives)",
            # Empty for the common single objective: shown with -o wide.
            "priority": 1,
        },
        {"name": "Completed", "type": "integer", "jsonPath": ".status.trials.completed"},
        {"name": "Running", "type": "integer", "jsonPath": ".status.trials.running"},
        {"name": "Queued", "type": "integer", "jsonPath": ".status.trials.queued"},
        {"name": "Max", "type": "integer", "jsonPath": ".spec.budget.maxTrials"},
        {"name": "Algorithm", "type": "string", "jsonPath": ".spec.algorithm.name", "priority": 1},
        {"name": "GPU-Hours", "type": "number", "jsonPath": ".status.gpuHours", "priority": 1},
        {
            "name": "Infeasible",
            "type": "integer",
            "jsonPath": ".status.infeasibleTrials",
            "priority": 1,
        },
        {"name": "Age", "type": "date", "jsonPath": ".metadata.creationTimestamp"},
    ]
    return _crd(
        "Experiment",
        "experiments",
        ["exp", "ksexp"],
        _version(experiment_spec_schema(), status, columns),
    )


def trial_crd() -> Schema:
    """The Trial CustomResourceDefinition."""
    spec = model_schema(TrialSpec)
    spec["x-kubernetes-validations"] = [
        {
            "rule": "self == oldSelf",
            "message": "Trial spec is immutable; trials are created by the operator",
        }
    ]
    status = model_schema(TrialStatus)
    columns: list[Schema] = [
        {"name": "Experiment", "type": "string", "jsonPath": ".spec.experiment"},
        {"name": "Phase", "type": "string", "jsonPath": ".status.phase"},
        {"name": "Objective", "type": "number", "jsonPath": ".status.objective"},
        {"name": "Fidelity", "type": "number", "jsonPath": ".spec.fidelity", "priority": 1},
        {"name": "Parent", "type": "string", "jsonPath": ".spec.parent", "priority": 1},
        {"name": "Reason", "type": "string", "jsonPath": ".status.reason", "priority": 1},
        {"name": "Age", "type": "date", "jsonPath": ".metadata.creationTimestamp"},
    ]
    return _crd("Trial", "trials", ["ksTrial".lower()], _version(spec, status, columns))


def render_all() -> dict[str, str]:
    """File name → YAML text for every CRD."""
    header = "# Generated from the API models by `make crds`; do not edit.\n"
    return {
        f"{GROUP}_experiments.yaml": header + yaml.safe_dump(experiment_crd(), sort_keys=False),
        f"{GROUP}_trials.yaml": header + yaml.safe_dump(trial_crd(), sort_keys=False),
    }


def chart_template() -> str:
    """The Helm chart's CRD template: the same CRDs behind ``crds.install``/``crds.keep``.

    Templated rather than placed in the chart's ``crds/`` folder, because Helm never
    upgrades CRDs from there, and a schema change must reach the cluster.
    """
    parts = [
        "# Generated from the API models by `make crds`; do not edit.\n",
        "{{- if .Values.crds.install }}\n",
    ]
    for crd in (experiment_crd(), trial_crd()):
        crd["metadata"]["annotations"] = {"kubesweep.io/keep": "KEEP"}
        text = yaml.safe_dump(crd, sort_keys=False)
        text = text.replace(
            "  annotations:\n    kubesweep.io/keep: KEEP\n",
            "  {{- if .Values.crds.keep }}\n  annotations:\n    helm.sh/resource-policy: keep\n"
            '  {{- end }}\n  labels:\n    {{- include "kubesweep.labels" . | nindent 4 }}\n',
        ).replace("  labels:\n    app.kubernetes.io/part-of: kubesweep\n", "", 1)
        parts.append("---\n" + text)
    parts.append("{{- end }}\n")
    return "".join(parts)


#: Where ``make crds`` writes the chart's CRD template, relative to the repository.
CHART_TEMPLATE = Path("charts/kubesweep/templates/crds.yaml")


def main(argv: list[str] | None = None) -> int:
    """Write the CRDs into the directory given as the only argument, and the chart template."""
    args = sys.argv[1:] if argv is None else argv
    target = Path(args[0] if args else "crds")
    target.mkdir(parents=True, exist_ok=True)
    for name, text in render_all().items():
        (target / name).write_text(text)
    chart = target.resolve().parent / CHART_TEMPLATE
    if chart.parent.is_dir():
        chart.write_text(chart_template())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
