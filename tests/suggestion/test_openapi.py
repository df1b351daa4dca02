"""The OpenAPI document: valid, complete, in step with the server and the committed copy."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import jsonschema_rs
import pytest

from kubesweep.suggestion.openapi import DOCUMENT_PATH, EXAMPLES, build_document, main, render
from kubesweep.suggestion.service import Engine, Settings, create_app

ROOT = Path(__file__).resolve().parents[2]
DIALECT = "https://json-schema.org/draft/2020-12/schema"


@pytest.fixture(scope="module")
def document() -> dict[str, Any]:
    return build_document()


def test_the_committed_document_is_current() -> None:
    committed = (ROOT / DOCUMENT_PATH).read_text(encoding="utf-8")
    assert committed == render(build_document()), (
        f"{DOCUMENT_PATH} is stale; run: python -m kubesweep.suggestion.openapi"
    )


def test_the_command_writes_and_checks(tmp_path: Path) -> None:
    target = tmp_path / "openapi.json"
    assert main([str(target), "--check"]) == 1
    assert main([str(target)]) == 0
    assert json.loads(target.read_text(encoding="utf-8")) == build_document()
    assert main([str(target), "--check"]) == 0


def test_the_document_is_valid_openapi_3_1(document: dict[str, Any]) -> None:
    validator = pytest.importorskip("openapi_spec_validator")
    validator.validate(document)


def test_the_document_matches_the_openapi_3_1_meta_schema(document: dict[str, Any]) -> None:
    """The same check without openapi-spec-validator: the OAS 3.1 schema schemathesis ships."""
    definitions = pytest.importorskip("schemathesis.specs.openapi.definitions")
    definitions.OPENAPI_31_VALIDATOR.validate(document)


def test_every_component_is_valid_json_schema(document: dict[str, Any]) -> None:
    for name, schema in document["components"]["schemas"].items():
        assert jsonschema_rs.meta.is_valid({"$schema": DIALECT, **schema}), name


def component_validator(document: dict[str, Any], ref: str) -> jsonschema_rs.Validator:
    root = {"$schema": DIALECT, "$ref": ref, "components": document["components"]}
    return jsonschema_rs.validator_for(root)


def test_the_examples_conform_to_their_schemas(document: dict[str, Any]) -> None:
    for path, item in document["paths"].items():
        for operation in item.values():
            media = operation.get("requestBody", {}).get("content", {}).get("application/json")
            if media is None:
                continue
            validator = component_validator(document, media["schema"]["$ref"])
            assert media["examples"], path
            for name, example in media["examples"].items():
                errors = [e.message for e in validator.iter_errors(example["value"])]
                assert not errors, (path, name, errors)


def test_examples_cover_every_request_body() -> None:
    assert set(EXAMPLES) == {"SuggestRequest", "StopRequest", "ValidateRequest"}


def test_the_document_describes_exactly_the_routes_served(document: dict[str, Any]) -> None:
    def unused(*_: Any) -> Any:
        raise AssertionError("not called")

    app = create_app(
        Settings(executor="thread", metrics_port=0),  # /metrics beside the API, as documented
        engine=Engine(suggest=unused, stop=unused, validate=unused),
    )
    served = {
        (route.resource.canonical, route.method.lower())
        for route in app.router.routes()
        if route.resource is not None
    }
    documented = {(path, method) for path, item in document["paths"].items() for method in item}
    assert served == documented


def test_error_replies_are_documented_for_every_post(document: dict[str, Any]) -> None:
    for path, item in document["paths"].items():
        if "post" in item:
            assert {"400", "413", "422", "500", "503"} <= set(item["post"]["responses"]), path
