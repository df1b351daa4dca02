"""The shared base of every API model, and cross-field rules stated once.

Kubernetes speaks camelCase and refuses unknown fields in a structural schema;
the Python models do the same (``extra="forbid"``) so that a typo in a manifest
is refused locally with the same field name the API server would name.

A cross-field rule is one value (:class:`Rule`) carrying both its CEL form, which
goes into the CRD's ``x-kubernetes-validations``, and its Python form, which the
model runs. One message serves both, so ``kubectl apply`` and ``kubesweep run``
refuse a bad manifest with the same words. The e2e suite checks that the two
forms agree on a real API server.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, ClassVar

from pydantic import BaseModel, ConfigDict, GetJsonSchemaHandler, model_validator
from pydantic.alias_generators import to_camel
from pydantic.json_schema import JsonSchemaValue
from pydantic_core import CoreSchema


@dataclass(frozen=True)
class Rule:
    """A cross-field validation rule, in CEL for the API server and in Python.

    ``cel`` is None for a rule CEL cannot state, because it reads a field whose
    schema CEL cannot type (a list of mixed scalars); such a rule is enforced by
    the model's structural schema instead (``structural_rules``).
    """

    cel: str | None
    message: str
    check: Callable[[Any], bool]
    field_path: str | None = None

    def as_crd(self) -> dict[str, str]:
        """The ``x-kubernetes-validations`` entry of this rule."""
        if self.cel is None:
            raise ValueError(f"rule {self.message!r} has no CEL form")
        entry = {"rule": self.cel, "message": self.message}
        if self.field_path is not None:
            entry["fieldPath"] = self.field_path
        return entry


@dataclass(frozen=True)
class TransitionRule:
    """A rule comparing an update with the stored object (CEL ``oldSelf``)."""

    cel: str
    message: str


class ApiModel(BaseModel):
    """Base of all kubesweep API objects: camelCase on the wire, strict about unknown keys."""

    model_config = ConfigDict(
        alias_generator=to_camel,
        populate_by_name=True,
        extra="forbid",
        frozen=True,
    )

    #: Cross-field rules checked here and emitted into the CRD.
    cel_rules: ClassVar[tuple[Rule, ...]] = ()
    #: Schema keywords (``anyOf``) for rules without a CEL form, merged into the CRD.
    structural_rules: ClassVar[dict[str, Any]] = {}

    @model_validator(mode="after")
    def _check_cel_rules(self) -> Any:
        for rule in type(self).cel_rules:
            if not rule.check(self):
                raise ValueError(rule.message)
        return self

    @classmethod
    def __get_pydantic_json_schema__(
        cls, core_schema: CoreSchema, handler: GetJsonSchemaHandler
    ) -> JsonSchemaValue:
        schema = handler(core_schema)
        target = handler.resolve_ref_schema(schema)
        validations = [rule.as_crd() for rule in cls.cel_rules if rule.cel is not None]
        if validations:
            target["x-kubernetes-validations"] = validations
        target.update(cls.structural_rules)
        return schema

    def to_wire(self) -> dict[str, Any]:
        """The object as Kubernetes stores it: camelCase keys, no unset optionals."""
        return self.model_dump(mode="json", by_alias=True, exclude_none=True)
