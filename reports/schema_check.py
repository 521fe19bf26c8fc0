"""A compiled yes/no check of a document against the results schema, for the common case: valid.

jsonschema walks the schema for every value of every cell (1.5 s for 5,000 cells); this compiles the
schema once into nested closures (a tenth of that). It only answers "valid?", and it is at least as
strict as jsonschema: `validate` trusts a yes, and on a no asks jsonschema, which decides and writes the
messages. Only the keywords the results schemas use are supported; any other keyword is refused at compile
time, so a schema change cannot silently weaken the check.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

Check = Callable[[Any], bool]
_ANNOTATIONS = frozenset({"$schema", "$id", "$defs", "title", "description"})
_SUPPORTED = _ANNOTATIONS | {
    "$ref", "type", "enum", "const", "required", "properties", "additionalProperties", "items", "minimum",
    "minLength",
}
# JSON types as Python types. Stricter than jsonschema on purpose: 1.0 is not an integer here, and
# bool is never a number.
_TYPES: dict[str, Check] = {
    "object": lambda v: type(v) is dict,
    "array": lambda v: type(v) is list,
    "string": lambda v: isinstance(v, str),
    "integer": lambda v: type(v) is int,
    "number": lambda v: type(v) in (int, float),
    "boolean": lambda v: type(v) is bool,
    "null": lambda v: v is None,
}


def compile_schema(schema: dict[str, Any]) -> Check:
    defs: dict[str, Check] = {}
    root_defs: dict[str, Any] = schema.get("$defs", {})

    def ref(target: str) -> Check:
        name = target.removeprefix("#/$defs/")
        if name == target or name not in root_defs:
            raise ValueError(f"unsupported $ref {target!r}")
        if name not in defs:
            defs[name] = _always  # placeholder while compiling a recursive definition
            defs[name] = build(root_defs[name])
        return lambda v: defs[name](v)

    def build(node: dict[str, Any]) -> Check:
        unknown = set(node) - _SUPPORTED
        if unknown:
            raise ValueError(f"schema keywords without a fast check: {sorted(unknown)}")
        checks: list[Check] = []
        if "$ref" in node:
            checks.append(ref(node["$ref"]))
        if "type" in node:
            names = node["type"] if isinstance(node["type"], list) else [node["type"]]
            kinds = [_TYPES[n] for n in names]
            checks.append(lambda v: any(k(v) for k in kinds))
        if "const" in node:
            const = node["const"]
            checks.append(lambda v: type(v) is type(const) and v == const)
        if "enum" in node:
            checks.append(_enum_check(node["enum"]))
        if "minimum" in node:
            low = node["minimum"]
            checks.append(lambda v: type(v) not in (int, float) or v >= low)
        if "minLength" in node:
            shortest = node["minLength"]
            checks.append(lambda v: not isinstance(v, str) or len(v) >= shortest)
        if {"properties", "required", "additionalProperties"} & set(node):
            checks.append(_object_check(node, build))
        if "items" in node:
            item = build(node["items"])
            checks.append(lambda v: type(v) is not list or all(item(i) for i in v))
        return lambda v: all(c(v) for c in checks)

    return build(schema)


def _object_check(node: dict[str, Any], build: Callable[[dict[str, Any]], Check]) -> Check:
    properties = {name: build(sub) for name, sub in node.get("properties", {}).items()}
    required = tuple(node.get("required", ()))
    extra = node.get("additionalProperties", True)
    extra_check: Check | None = build(extra) if isinstance(extra, dict) else None

    def check(value: Any) -> bool:
        if type(value) is not dict:
            return True  # "type" decides whether a non-object is allowed here
        if any(name not in value for name in required):
            return False
        for key, item in value.items():
            prop = properties.get(key)
            if prop is not None:
                if not prop(item):
                    return False
            elif extra is False or (extra_check is not None and not extra_check(item)):
                return False
        return True

    return check


def _enum_check(values: list[Any]) -> Check:
    # Strings and null only: str-enum members (Outcome.PASS) are str and compare equal to their value.
    if any(v is not None and not isinstance(v, str) for v in values):
        raise ValueError(f"enum values without a fast check: {values!r}")
    strings, allow_null = frozenset(v for v in values if v is not None), None in values
    return lambda v: (v is None and allow_null) or (isinstance(v, str) and v in strings)


def _always(_: Any) -> bool:
    return True
