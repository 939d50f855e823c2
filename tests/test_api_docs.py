"""A plugin author learns the API from its docstrings and type hints, not from
inspect.signature and help(): every public callable in rf_core.api has a docstring, every
parameter and return value a type, and every field of the records-like classes a plugin
builds or reads (Limits, Matcher, Generation, Option, SampleRequest, DatasetItem) is described in its class's
docstring."""

from __future__ import annotations

import dataclasses
import inspect

import pytest

import rf_core.api as api
from rf_core.records.validation import validate

SKIP = {"hookimpl"}  # pluggy's marker, documented by pluggy


def callables():
    for name in api.__all__:
        obj = getattr(api, name)
        if name in SKIP or not callable(obj) or not getattr(obj, "__module__", "").startswith(
                "rf_core"):
            continue
        yield name, obj


def problems_of(name: str, fn) -> list[str]:
    out = []
    if not (inspect.getdoc(fn) or "").strip():
        out.append(f"{name}: no docstring")
    fn = inspect.unwrap(fn)
    sig = inspect.signature(fn)
    for p in sig.parameters.values():
        if p.name in ("self", "cls") or p.kind in (p.VAR_POSITIONAL, p.VAR_KEYWORD):
            continue
        if p.annotation is inspect.Parameter.empty:
            out.append(f"{name}: parameter {p.name!r} has no type")
    if sig.return_annotation is inspect.Signature.empty and not inspect.isclass(fn):
        out.append(f"{name}: no return type")
    return out


def test_every_public_callable_has_a_docstring_and_types():
    problems = []
    for name, obj in callables():
        if inspect.isclass(obj):
            if not (obj.__doc__ or "").strip():
                problems.append(f"{name}: no docstring")
            for attr, member in vars(obj).items():
                if attr.startswith("_") or not inspect.isfunction(member):
                    continue
                if dataclasses.is_dataclass(obj) and attr in {f.name for f in
                                                              dataclasses.fields(obj)}:
                    continue  # a field whose default is a function: described below
                problems += problems_of(f"{name}.{attr}", member)
        else:
            problems += problems_of(name, obj)
    assert not problems, "\n".join(problems)


@pytest.mark.parametrize("name", ["Limits", "Matcher", "Generation", "Option", "SampleRequest",
                                  "DatasetItem"])
def test_every_field_is_described(name):
    cls = getattr(api, name)
    fields = ([f.name for f in dataclasses.fields(cls)] if dataclasses.is_dataclass(cls) else
              [p for p in inspect.signature(cls).parameters if p != "self"])
    doc = inspect.getdoc(cls)
    missing = [f for f in fields if f"``{f}" not in doc]  # ``name`` or ``name(args)``
    assert not missing, f"{name}'s docstring does not describe {missing}"


def test_make_task_needs_only_what_identifies_a_task(shop_db):
    task = api.make_task(id="mine/dev/0", dataset="mine", split="dev", db_id="shop",
                         db_path=shop_db, question="How many products?",
                         gold_sql="SELECT count(*) FROM product")
    validate(task)
    assert task["hardness"] == "easy"  # graded from the gold SQL
    assert "CREATE TABLE product" in task["schema"]  # described from the database
    bare = api.make_task(id="mine/dev/1", dataset="mine", split="dev", db_id="shop",
                         db_path=shop_db, question="?", schema="", values=0)
    assert bare["gold_sql"] is None and bare["hardness"] is None and bare["schema"] == ""
    kept = api.make_task(id="x", dataset="mine", split="dev", db_id="shop", db_path=shop_db,
                         question="?", gold_sql="SELECT 1", hardness=None, schema="s")
    assert kept["hardness"] is None


@pytest.mark.parametrize("sql", ["", None, "hello world", "DROP TABLE x", "SELECT a FROM ((("])
def test_spider_hardness_grades_what_it_cannot_count(sql):
    from rf_core.data.hardness import spider_hardness

    assert spider_hardness(sql) == "easy"
    assert "cannot" in inspect.getdoc(spider_hardness)
