"""Rules between the fields of a message, stated once: `__post_init__` checks them and the
JSON Schema export states them (jsonschema.py), so the two cannot drift apart.

A message class lists its rules in a `field_rules` ClassVar. A field is *set* when it differs
from its default (None, or False for a flag).
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, ClassVar, Protocol, Union

import msgspec


def _is_set(message: object, field: str, defaults: Mapping[str, Any]) -> bool:
    return bool(getattr(message, field) != defaults[field])


def _unset_schema(default: Any) -> dict[str, Any]:
    return {"type": "null"} if default is None else {"const": default}


def _set_schema(field: str, default: Any) -> dict[str, Any]:
    return {"required": [field], "properties": {field: {"not": _unset_schema(default)}}}


@dataclass(frozen=True)
class SetWhen:
    """`field` is set when `when` is one of `values` and unset otherwise; `required=False`
    lets it stay unset then too (it is only *allowed* then)."""

    field: str
    when: str
    values: tuple[enum.Enum, ...]
    required: bool = True

    def check(self, message: object, defaults: Mapping[str, Any]) -> None:
        condition = getattr(message, self.when)
        applies = condition in self.values
        label = condition.value if isinstance(condition, enum.Enum) else condition
        if applies and self.required and not _is_set(message, self.field, defaults):
            raise ValueError(f"{self.field} is required when {self.when} is {label}")
        if not applies and _is_set(message, self.field, defaults):
            raise ValueError(f"{self.field} is not allowed when {self.when} is {label}")

    def schema(self, defaults: Mapping[str, Any]) -> dict[str, Any]:
        condition: dict[str, Any] = {"properties": {self.when: {"enum": [value.value for value in self.values]}}}
        if defaults.get(self.when, msgspec.NODEFAULT) not in self.values:
            condition["required"] = [self.when]  # absent means its default: the condition fails
        schema: dict[str, Any] = {"if": condition}
        if self.required:
            schema["then"] = _set_schema(self.field, defaults[self.field])
        schema["else"] = {"properties": {self.field: _unset_schema(defaults[self.field])}}
        return schema


@dataclass(frozen=True)
class AnySet:
    """At least one of `fields` is set."""

    fields: tuple[str, ...]

    def check(self, message: object, defaults: Mapping[str, Any]) -> None:
        if not any(_is_set(message, field, defaults) for field in self.fields):
            raise ValueError(f"at least one of {', '.join(self.fields)} must be set")

    def schema(self, defaults: Mapping[str, Any]) -> dict[str, Any]:
        return {"anyOf": [_set_schema(field, defaults[field]) for field in self.fields]}


@dataclass(frozen=True)
class OneSetWhen:
    """Exactly one of `fields` is set when `when` is one of `values` (each field's own SetWhen
    rule says where it is allowed at all)."""

    fields: tuple[str, ...]
    when: str
    values: tuple[enum.Enum, ...]

    def check(self, message: object, defaults: Mapping[str, Any]) -> None:
        condition = getattr(message, self.when)
        if condition not in self.values:
            return
        count = sum(_is_set(message, field, defaults) for field in self.fields)
        if count != 1:
            label = condition.value if isinstance(condition, enum.Enum) else condition
            raise ValueError(f"exactly one of {', '.join(self.fields)} is required when {self.when} is {label}")

    def schema(self, defaults: Mapping[str, Any]) -> dict[str, Any]:
        condition: dict[str, Any] = {"properties": {self.when: {"enum": [value.value for value in self.values]}},
                                     "required": [self.when]}
        return {"if": condition, "then": {"oneOf": [_set_schema(field, defaults[field]) for field in self.fields]}}


FieldRule = Union[SetWhen, AnySet, OneSetWhen]


class HasFieldRules(Protocol):
    field_rules: ClassVar[tuple[FieldRule, ...]]


def defaults_of(cls: type) -> dict[str, Any]:
    """Field name -> default (msgspec.NODEFAULT for a required field)."""
    return {field.name: field.default for field in msgspec.structs.fields(cls)}


_DEFAULTS: dict[type, dict[str, Any]] = {}


def check_field_rules(message: HasFieldRules) -> None:
    """Raise ValueError for the first rule `message` breaks (from `__post_init__`)."""
    cls = type(message)
    defaults = _DEFAULTS.get(cls)
    if defaults is None:
        defaults = _DEFAULTS[cls] = defaults_of(cls)
    for rule in message.field_rules:
        rule.check(message, defaults)


def field_rules_schema(cls: type) -> list[dict[str, Any]]:
    """The JSON Schema (`allOf` items) of the rules of `cls`; none if it has no rules."""
    defaults = defaults_of(cls)
    return [rule.schema(defaults) for rule in getattr(cls, "field_rules", ())]
