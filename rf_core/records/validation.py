"""Records checked against the record schemas (``schema_dir()``) as they are read, so a
field of the wrong type is a one-line error naming the line and the field, never a traceback
deep inside a command.

The schemas are the contract between commands; this module compiles the part of JSON Schema
they use (type, const, enum, required, properties, additionalProperties as a schema, items,
local $ref, minimum, exclusiveMinimum, maximum, minLength, minItems) into plain Python checks,
once per process. An integer is 64-bit signed, as SQLite, torch and orjson hold one. Unknown
fields pass through unchecked, as the record schema promises.
"""

from __future__ import annotations

import functools
from pathlib import Path
from typing import Callable

import orjson

# JSON type -> the Python types that carry it (bool is an int in Python, so it is told apart)
_PY_TYPES: dict[str, tuple] = {
    "string": (str,), "integer": (int,), "number": (int, float), "boolean": (bool,),
    "null": (type(None),), "object": (dict,), "array": (list,),
}
INT_MIN, INT_MAX = -2**63, 2**63 - 1


class SchemaError(ValueError):
    """A record that breaks its schema: ``field`` is a path such as ``candidates[0].sql``."""

    def __init__(self, field: str, problem: str):
        super().__init__()
        self.field = field
        self.problem = problem

    def within(self, step: str) -> "SchemaError":
        """The same error one level up: ``step`` is a property name or ``[i]``."""
        sep = "" if not self.field or self.field.startswith("[") else "."
        self.field = f"{step}{sep}{self.field}"
        return self

    def __str__(self) -> str:
        return f"field {self.field}: {self.problem}" if self.field else self.problem


def json_type(v) -> str:
    """The JSON name of a Python value's type, as error messages say it."""
    if isinstance(v, bool):
        return "boolean"
    for name in ("null", "integer", "number", "string", "array", "object"):
        if isinstance(v, _PY_TYPES[name]):
            return name
    return type(v).__name__


def schema_dir() -> Path:
    """The folder of the record schemas: package data of ``rf_core.records``, so an installed
    wheel has them as a source checkout does (its top-level schemas/ links here)."""
    return Path(__file__).resolve().with_name("schemas")


@functools.lru_cache(maxsize=None)
def load_schema(kind: str) -> dict:
    return orjson.loads((schema_dir() / f"{kind}.schema.json").read_bytes())


Check = Callable[[object], None]


def _compile(node: dict, root: dict) -> Check:
    """One function per schema node. Field paths are built only when a check fails (each
    level adds its step to the error on the way out), so a valid record costs type tests."""
    if "$ref" in node:
        ref = node["$ref"]
        if not ref.startswith("#/$defs/"):
            raise ValueError(f"unsupported $ref {ref!r}")
        return _compile(root["$defs"][ref.rsplit("/", 1)[1]], root)
    names = node.get("type")
    names = [names] if isinstance(names, str) else names
    types = tuple(t for n in names for t in _PY_TYPES[n]) if names else None
    bool_ok = names is None or "boolean" in names
    want = " or ".join(names) if names else ""
    integer = names is not None and "integer" in names
    rare = _rare_checks(node)
    props = [(name, _compile(sub, root)) for name, sub in node.get("properties", {}).items()]
    named = {name for name, _ in props}
    extra = node.get("additionalProperties")
    others = _compile(extra, root) if isinstance(extra, dict) else None
    required = tuple(node.get("required", ()))
    item = _compile(node["items"], root) if "items" in node else None

    def check(v):
        if types is not None and (not isinstance(v, types) or
                                  (v is True or v is False) and not bool_ok):
            raise SchemaError("", f"expected {want}, got {json_type(v)}")
        if integer and type(v) is int and not INT_MIN <= v <= INT_MAX:
            side = "above 2^63-1" if v > 0 else "below -2^63"
            raise SchemaError("", f"integer out of range ({side})")
        for c in rare:
            c(v)
        if type(v) is dict:
            # fields that are there and wrong first: that is the more useful message
            for name, sub in props:
                if name in v:
                    try:
                        sub(v[name])
                    except SchemaError as exc:
                        raise exc.within(name) from None
            if others is not None:
                for name, x in v.items():
                    if name not in named:
                        try:
                            others(x)
                        except SchemaError as exc:
                            raise exc.within(name) from None
            for name in required:
                if name not in v:
                    raise SchemaError(name, "missing")
        elif item is not None and type(v) is list:
            for i, x in enumerate(v):
                try:
                    item(x)
                except SchemaError as exc:
                    raise exc.within(f"[{i}]") from None
    return check


def _rare_checks(node: dict) -> list[Check]:
    """const, enum, bounds and sizes: few fields have them."""
    checks: list[Check] = []

    def same(a, b) -> bool:
        return a == b and type(a) is type(b)

    if "const" in node:
        const = node["const"]

        def check_const(v):
            if not same(v, const):
                raise SchemaError("", f"expected {_show(const)}, got {_show(v)}")
        checks.append(check_const)
    if "enum" in node:
        allowed = node["enum"]
        shown = ", ".join(_show(a) for a in allowed)

        def check_enum(v):
            if not any(same(v, a) for a in allowed):
                raise SchemaError("", f"expected one of {shown}, got {_show(v)}")
        checks.append(check_enum)
    for key, holds, word in (("minimum", lambda v, b: v >= b, "at least"),
                             ("exclusiveMinimum", lambda v, b: v > b, "more than"),
                             ("maximum", lambda v, b: v <= b, "at most")):
        if key in node:
            def check_bound(v, bound=node[key], holds=holds, word=word):
                if isinstance(v, (int, float)) and not isinstance(v, bool) and \
                        not holds(v, bound):
                    raise SchemaError("", f"expected a number {word} {bound}, got {v!r}")
            checks.append(check_bound)
    if "minLength" in node:
        def check_length(v, n=node["minLength"]):
            if isinstance(v, str) and len(v) < n:
                raise SchemaError("", f"expected a string of at least {n} character(s)")
        checks.append(check_length)
    if "minItems" in node:
        def check_count(v, n=node["minItems"]):
            if isinstance(v, list) and len(v) < n:
                raise SchemaError("", f"expected at least {n} item(s)")
        checks.append(check_count)
    return checks


def _show(v) -> str:
    text = orjson.dumps(v).decode() if not isinstance(v, float) or v == v else repr(v)
    return text if len(text) <= 40 else text[:37] + "..."


@functools.lru_cache(maxsize=None)
def validator(kind: str) -> Callable[[dict], None]:
    """A function that raises SchemaError where a ``kind`` record breaks its schema."""
    schema = load_schema(kind)
    return _compile(schema, schema)


@functools.lru_cache(maxsize=1)
def known_kinds() -> frozenset[str]:
    return frozenset(p.name.split(".")[0] for p in schema_dir().glob("*.schema.json"))


def validate(rec: dict) -> None:
    """Check a record against the schema of its own ``kind`` (task, example, report, ...)."""
    kind = rec.get("kind")
    if kind not in known_kinds():
        raise SchemaError("kind", f"unknown record kind {_show(kind)}")
    validator(kind)(rec)
