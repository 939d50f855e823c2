"""Records checked against schemas/ as they are read, so a field of the wrong type is a
one-line error naming the line and the field, never a traceback deep inside a command.

The schemas are the contract between commands; this module compiles the part of JSON Schema
they use (type, const, enum, required, properties, items, local $ref, minimum,
exclusiveMinimum, minLength, minItems) into plain Python checks, once per process. Unknown
fields pass through unchecked, as the record schema promises.
"""

from __future__ import annotations

import functools
from pathlib import Path
from typing import Callable

import orjson

_TYPES: dict[str, Callable[[object], bool]] = {
    "string": lambda v: isinstance(v, str),
    "integer": lambda v: isinstance(v, int) and not isinstance(v, bool),
    "number": lambda v: isinstance(v, (int, float)) and not isinstance(v, bool),
    "boolean": lambda v: isinstance(v, bool),
    "null": lambda v: v is None,
    "object": lambda v: isinstance(v, dict),
    "array": lambda v: isinstance(v, list),
}


class SchemaError(ValueError):
    """A record that breaks its schema: ``field`` is a path such as ``candidates[0].sql``."""

    def __init__(self, field: str, problem: str):
        self.field = field
        self.problem = problem
        super().__init__(f"field {field}: {problem}" if field else problem)


def json_type(v) -> str:
    """The JSON name of a Python value's type, as error messages say it."""
    for name in ("null", "boolean", "integer", "number", "string", "array", "object"):
        if _TYPES[name](v):
            return name
    return type(v).__name__


def schema_dir() -> Path:
    """schemas/ of the installed package (a wheel carries it as ``rf_core/schemas``), or of the
    source checkout an editable install runs from."""
    packaged = Path(__file__).with_name("schemas")
    return packaged if packaged.is_dir() else Path(__file__).resolve().parents[1] / "schemas"


@functools.lru_cache(maxsize=None)
def load_schema(kind: str) -> dict:
    return orjson.loads((schema_dir() / f"{kind}.schema.json").read_bytes())


Check = Callable[[object, str], None]


def _join(path: str, name: str) -> str:
    return f"{path}.{name}" if path else name


def _compile(node: dict, root: dict) -> Check:
    if "$ref" in node:
        ref = node["$ref"]
        if not ref.startswith("#/$defs/"):
            raise ValueError(f"unsupported $ref {ref!r}")
        return _compile(root["$defs"][ref.rsplit("/", 1)[1]], root)
    checks: list[Check] = []
    if "const" in node:
        const = node["const"]

        def check_const(v, path):
            if v != const or type(v) is not type(const):
                raise SchemaError(path, f"expected {orjson.dumps(const).decode()}, "
                                        f"got {_show(v)}")
        checks.append(check_const)
    if "enum" in node:
        allowed = node["enum"]
        shown = ", ".join(orjson.dumps(a).decode() for a in allowed)

        def check_enum(v, path):
            if not any(v == a and type(v) is type(a) for a in allowed):
                raise SchemaError(path, f"expected one of {shown}, got {_show(v)}")
        checks.append(check_enum)
    if "type" in node:
        names = node["type"] if isinstance(node["type"], list) else [node["type"]]
        tests = [_TYPES[n] for n in names]
        want = " or ".join(names)

        def check_type(v, path):
            if not any(t(v) for t in tests):
                raise SchemaError(path, f"expected {want}, got {json_type(v)}")
        checks.append(check_type)
    for key, test, word in (("minimum", lambda v, b: v >= b, "at least"),
                            ("exclusiveMinimum", lambda v, b: v > b, "more than")):
        if key in node:
            bound = node[key]

            def check_bound(v, path, bound=bound, test=test, word=word):
                if _TYPES["number"](v) and not test(v, bound):
                    raise SchemaError(path, f"expected a number {word} {bound}, got {v!r}")
            checks.append(check_bound)
    if "minLength" in node:
        n = node["minLength"]

        def check_len(v, path):
            if isinstance(v, str) and len(v) < n:
                raise SchemaError(path, f"expected a string of at least {n} character(s)")
        checks.append(check_len)
    if "minItems" in node:
        n = node["minItems"]

        def check_items_count(v, path):
            if isinstance(v, list) and len(v) < n:
                raise SchemaError(path, f"expected at least {n} item(s)")
        checks.append(check_items_count)
    # fields that are there and wrong first: that is the more useful message
    if "properties" in node:
        props = {name: _compile(sub, root) for name, sub in node["properties"].items()}

        def check_props(v, path):
            if isinstance(v, dict):
                for name, check in props.items():
                    if name in v:
                        check(v[name], _join(path, name))
        checks.append(check_props)
    if "required" in node:
        required = node["required"]

        def check_required(v, path):
            if isinstance(v, dict):
                for name in required:
                    if name not in v:
                        raise SchemaError(_join(path, name), "missing")
        checks.append(check_required)
    if "items" in node:
        item = _compile(node["items"], root)

        def check_items(v, path):
            if isinstance(v, list):
                for i, x in enumerate(v):
                    item(x, f"{path}[{i}]")
        checks.append(check_items)

    def check(v, path):
        for c in checks:
            c(v, path)
    return check


def _show(v) -> str:
    text = orjson.dumps(v).decode() if not isinstance(v, float) or v == v else repr(v)
    return text if len(text) <= 40 else text[:37] + "..."


@functools.lru_cache(maxsize=None)
def validator(kind: str) -> Callable[[dict], None]:
    """A function that raises SchemaError where a ``kind`` record breaks its schema."""
    schema = load_schema(kind)
    check = _compile(schema, schema)
    return lambda rec: check(rec, "")


@functools.lru_cache(maxsize=1)
def known_kinds() -> frozenset[str]:
    return frozenset(p.name.split(".")[0] for p in schema_dir().glob("*.schema.json"))


def validate(rec: dict) -> None:
    """Check a record against the schema of its own ``kind`` (task, example, report, ...)."""
    kind = rec.get("kind")
    if kind not in known_kinds():
        raise SchemaError("kind", f"unknown record kind {_show(kind)}")
    validator(kind)(rec)
