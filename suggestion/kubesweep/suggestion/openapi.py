"""The suggestion service's OpenAPI 3.1 document.

The document is generated from the same pydantic models
(:mod:`kubesweep.api.suggestion_wire`) that the service validates requests with
and the operator builds them with (requests in pydantic's validation mode,
replies in serialization mode), so the published contract, the server and its
callers cannot drift apart: a change to a model changes the document, and
``tests/suggestion/test_openapi.py`` fails until the committed copy is
regenerated::

    python -m kubesweep.suggestion.openapi            # writes docs/suggestion-openapi.json
    python -m kubesweep.suggestion.openapi --check    # exits 1 when it is stale

OpenAPI 3.1 is used because its schema dialect *is* JSON Schema 2020-12, which is
what pydantic emits; no translation (nullable, exclusiveMinimum as a flag) needed.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from pydantic import BaseModel
from pydantic.json_schema import JsonSchemaMode, models_json_schema

from kubesweep.api.suggestion_wire import (
    ErrorReply,
    HealthReply,
    HistoryNeededReply,
    StopReply,
    StopRequest,
    SuggestReply,
    SuggestRequest,
    ValidateReply,
    ValidateRequest,
)

#: Where the committed copy of the document lives, relative to the repository root.
DOCUMENT_PATH = Path("docs/suggestion-openapi.json")
API_VERSION = "v1"


_MODELS: tuple[tuple[type[BaseModel], JsonSchemaMode], ...] = (
    (SuggestRequest, "validation"),
    (SuggestReply, "serialization"),
    (StopRequest, "validation"),
    (StopReply, "serialization"),
    (ValidateRequest, "validation"),
    (ValidateReply, "serialization"),
    (ErrorReply, "serialization"),
    (HealthReply, "serialization"),
    (HistoryNeededReply, "serialization"),
)


_SPACE: dict[str, Any] = {
    "parameters": [
        {"name": "lr", "type": "float", "min": 1.0e-5, "max": 0.1, "log": True},
        {"name": "layers", "type": "int", "min": 1, "max": 8},
        {"name": "optimizer", "type": "categorical", "values": ["adam", "sgd"]},
    ]
}
_TRIALS: list[dict[str, Any]] = [
    {
        "name": "mnist-lr-0",
        "parameters": {"lr": 0.001, "layers": 2, "optimizer": "adam"},
        "state": "completed",
        "value": 0.21,
        "intermediate": [{"step": 1, "value": 0.4}, {"step": 2, "value": 0.21}],
    },
    {
        "name": "mnist-lr-1",
        "parameters": {"lr": 0.05, "layers": 6, "optimizer": "sgd"},
        "state": "completed",
        "value": 0.35,
        "intermediate": [{"step": 1, "value": 0.6}, {"step": 2, "value": 0.35}],
    },
    {
        "name": "mnist-lr-2",
        "parameters": {"lr": 0.0003, "layers": 4, "optimizer": "adam"},
        "state": "pending",
        "intermediate": [{"step": 1, "value": 0.9}],
    },
]

#: Request examples: documentation, and the first requests schemathesis sends.
EXAMPLES: dict[str, dict[str, Any]] = {
    "SuggestRequest": {
        "bayesian": {
            "summary": "Two more trials of a Bayesian search, one still running",
            "value": {
                "experimentUid": "6f1c2a9e-0d1b-4c55-9a43-3f0f8e2b7c11",
                "space": _SPACE,
                "direction": "minimize",
                "algorithm": {"name": "bayesian", "seed": 7},
                "trials": _TRIALS,
                "count": 2,
            },
        },
        "hyperband": {
            "summary": "Hyperband: each assignment carries a fidelity (epochs)",
            "value": {
                "space": {
                    **_SPACE,
                    "fidelity": {"parameter": "epochs", "min": 1, "max": 27, "eta": 3},
                },
                "algorithm": {"name": "hyperband", "seed": 7},
                "count": 3,
            },
        },
    },
    "StopRequest": {
        "median": {
            "summary": "Should the running trial stop?",
            "value": {
                "space": _SPACE,
                "earlyStopping": {"name": "median"},
                "trials": _TRIALS,
            },
        }
    },
    "ValidateRequest": {
        "typo": {
            "summary": "A misspelt setting is reported, naming it",
            "value": {
                "space": _SPACE,
                "algorithm": {"name": "random", "settings": {"initalTrials": 5}},
            },
        }
    },
}


def _json(ref: str) -> dict[str, Any]:
    return {"application/json": {"schema": {"$ref": ref}}}


def _error(description: str, refs: dict[str, str]) -> dict[str, Any]:
    return {"description": description, "content": _json(refs["ErrorReply"])}


#: The answer to a request whose ``historyBase`` the replica does not hold.
_HISTORY_NEEDED = (
    "The request names a `historyBase` this replica does not hold (it restarted, evicted "
    "it, or another replica answered before): send the request again with the whole history "
    "and no `historyBase`."
)


def _post(
    operation: str,
    summary: str,
    description: str,
    bodies: tuple[str, str],
    refs: dict[str, str],
    *,
    incremental: bool = False,
) -> dict[str, Any]:
    request, reply = bodies
    history: dict[str, Any] = {}
    if incremental:
        history["409"] = {
            "description": _HISTORY_NEEDED,
            "content": _json(refs["HistoryNeededReply"]),
        }
    return {
        "post": {
            "summary": summary,
            "description": description,
            "operationId": operation,
            "requestBody": {
                "required": True,
                "content": {
                    "application/json": {
                        "schema": {"$ref": refs[request]},
                        "examples": EXAMPLES[request],
                    }
                },
            },
            "security": [{OPERATOR_TOKEN: []}],
            "responses": {
                "200": {"description": "The answer.", "content": _json(refs[reply])},
                "400": _error("The body is not a JSON object.", refs),
                "401": _error(
                    "No bearer token, where the service admits only allowed callers "
                    "(`--allowed-callers`).",
                    refs,
                ),
                "403": _error(
                    "The token is not valid for the service's audience, or belongs to a "
                    "ServiceAccount that may not ask.",
                    refs,
                ),
                "408": _error("The body did not arrive within the body timeout.", refs),
                **history,
                "413": _error("The body is larger than the service accepts.", refs),
                "415": _error(
                    "The body is declared as something other than JSON (`Content-Type`).", refs
                ),
                "422": _error(
                    "The request is well-formed JSON but invalid: wrong types, unknown or "
                    "missing fields, or settings the algorithm refuses. `problems` names "
                    "each field at fault.",
                    refs,
                ),
                "500": _error("A bug in the service; its log has the traceback.", refs),
                "503": _error(
                    "Too many requests, or too many bytes of request bodies, are in "
                    "flight, or the worker computing the request died; retry after the "
                    "`Retry-After` header's seconds.",
                    refs,
                ),
                "504": _error(
                    "No answer within the service's deadline; the computation was stopped "
                    "and its worker replaced. Lower the algorithm's cost settings.",
                    refs,
                ),
            },
        }
    }


def _probe(operation: str, summary: str, description: str, refs: dict[str, str]) -> dict[str, Any]:
    body = {"content": _json(refs["HealthReply"])}
    return {
        "get": {
            "summary": summary,
            "description": description,
            "operationId": operation,
            "responses": {
                "200": {"description": "Healthy.", **body},
                "503": {"description": "Not serving (starting or shutting down).", **body},
            },
        }
    }


#: The name of the security scheme of the computing endpoints.
OPERATOR_TOKEN = "operatorToken"


def build_document() -> dict[str, Any]:
    """The OpenAPI 3.1 document of the suggestion service."""
    key_map, definitions = models_json_schema(
        _MODELS, by_alias=True, ref_template="#/components/schemas/{model}"
    )
    refs = {model.__name__: key_map[(model, mode)]["$ref"] for model, mode in _MODELS}
    paths: dict[str, Any] = {
        "/v1/suggest": _post(
            "suggest",
            "Suggest new trial assignments",
            "Returns up to `count` new assignments (each with a fidelity budget for "
            "multi-fidelity algorithms) given the observed trials; fewer only with "
            "`exhausted: true`, when the space can give no more. Deterministic for a "
            "given request.",
            ("SuggestRequest", "SuggestReply"),
            refs,
            incremental=True,
        ),
        "/v1/stop": _post(
            "stop",
            "Stop decisions for running trials",
            "Returns the pending (running) trials that the early-stopping rule says "
            "should stop now, each with a reason.",
            ("StopRequest", "StopReply"),
            refs,
            incremental=True,
        ),
        "/v1/validate": _post(
            "validate",
            "Validate a search space and algorithm settings",
            "Checks the space, the algorithm's settings and the stopping rule's "
            "settings. Problems with their values are reported with `valid: false` "
            "and status 200; a body of the wrong shape is refused with 4xx.",
            ("ValidateRequest", "ValidateReply"),
            refs,
        ),
        "/healthz": _probe(
            "healthz", "Liveness probe", "200 while the event loop answers; no dependencies.", refs
        ),
        "/readyz": _probe(
            "readyz",
            "Readiness probe",
            "200 once the workers are started, 503 while draining.",
            refs,
        ),
        "/metrics": {
            "get": {
                "summary": "Prometheus metrics",
                "description": "Latency by endpoint and algorithm, request sizes, errors "
                "by kind, cache results. Served on a port of its own (`--metrics-port`, "
                "default 9090), so that scraping it does not open the API; on the API's "
                "port only with `--metrics-port 0`.",
                "operationId": "metrics",
                "responses": {
                    "200": {
                        "description": "Prometheus text exposition format.",
                        "content": {"text/plain": {"schema": {"type": "string"}}},
                    }
                },
            }
        },
        "/openapi.json": {
            "get": {
                "summary": "This document",
                "operationId": "openapi",
                "responses": {
                    "200": {
                        "description": "The OpenAPI 3.1 document.",
                        "content": {"application/json": {"schema": {"type": "object"}}},
                    }
                },
            }
        },
    }
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "kubesweep suggestion service",
            "version": API_VERSION,
            "description": "Stateless hyperparameter suggestion and early stopping. Every "
            "request is answered from its own content, or, with `historyBase`, from the "
            "changes it carries on a history the replica holds (409 when it holds none); "
            "see docs/suggestion-service.md.",
            "license": {"name": "Apache-2.0", "identifier": "Apache-2.0"},
        },
        "jsonSchemaDialect": "https://spec.openapis.org/oas/3.1/dialect/base",
        "paths": paths,
        "components": {
            "schemas": definitions.get("$defs", {}),
            "securitySchemes": {
                OPERATOR_TOKEN: {
                    "type": "http",
                    "scheme": "bearer",
                    "description": "The operator's projected ServiceAccount token, bound to "
                    "the audience `kubesweep-suggestion` (`--token-audience`) and checked with "
                    "a TokenReview. Required when the service runs with `--allowed-callers`.",
                }
            },
        },
    }


def render(document: dict[str, Any]) -> str:
    """The document as committed: stable key order, two-space indent, final newline."""
    return json.dumps(document, indent=2, ensure_ascii=False) + "\n"


def main(argv: list[str] | None = None) -> int:
    """Write the document to a file, or with ``--check`` report whether it is stale."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("path", nargs="?", type=Path, default=DOCUMENT_PATH)
    parser.add_argument(
        "--check", action="store_true", help="exit 1 if the file differs instead of writing"
    )
    args = parser.parse_args(argv)
    text = render(build_document())
    path: Path = args.path
    if args.check:
        current = path.read_text(encoding="utf-8") if path.exists() else ""
        if current != text:
            print(f"{path} is stale; run: python -m kubesweep.suggestion.openapi", file=sys.stderr)
            return 1
        return 0
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
