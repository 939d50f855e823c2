"""Integers beyond 64 bits: unknown fields pass through byte-exact (orjson would read them as
floats and refuses to write them), and a known integer field out of the 64-bit signed range
is a bad line saying so."""

from __future__ import annotations

import io

import pytest

from conftest import run
from test_field_types import full_task
from rf_core.records.io import RecordWriter, parse_line

BIG = ["18446744073709551616",  # 2^64: orjson gives 1.8446744073709552e+19
       "123456789012345678901234567890",
       "-9223372036854775809",  # -2^63 - 1
       "99999999999999999999999999999999999999999999999999"]


def _line(task: dict, field: str, number: str) -> bytes:
    import orjson

    head = orjson.dumps(task)[:-1]  # without the closing brace
    return head + f',"{field}":{number}}}\n'.encode()


@pytest.mark.parametrize("number", BIG)
def test_unknown_big_integer_passes_through_byte_exact(shop_db, number):
    task = full_task(shop_db)
    nested = _line(task, "ext", f'{{"mine":{{"n":{number},"s":"{"7" * 25}"}}}}')
    for line in (_line(task, "big", number), nested):
        r = run("rf-vote", [], input=line)
        assert r.code == 0, r.stderr
        assert number.encode() in r.stdout
        assert r.stdout.count(b"e+") == 0 and b"1.8446744073709552" not in r.stdout


def test_reading_and_writing_big_integers_directly():
    line = b'{"schema_version":1,"kind":"example","task_id":null,' \
           b'"messages":[{"role":"user","content":"q 123456789012345678901"}],' \
           b'"completion":"x","source":"gold","weight":1,"n":18446744073709551616,"f":2.5}'
    rec = parse_line(line, 1)
    assert rec["n"] == 2**64 and type(rec["n"]) is int and rec["f"] == 2.5
    out = io.BytesIO()
    RecordWriter(out).write(rec)
    assert b'"n":18446744073709551616' in out.getvalue()
    assert out.getvalue().endswith(b"}\n") and out.getvalue().count(b"\n") == 1


@pytest.mark.parametrize("value,side", [(2**63, "above 2^63-1"), (2**64 + 1, "above 2^63-1"),
                                        (10**30, "above 2^63-1"),
                                        (-2**63 - 1, "below -2^63")])
def test_known_integer_field_out_of_range_is_a_bad_line(shop_db, value, side):
    task = full_task(shop_db)
    good = _line(task, "x", "1")
    cand = task["candidates"][0]
    import orjson

    bad_task = dict(task, candidates=[dict(cand, seed=0)])
    bad = orjson.dumps(bad_task).replace(b'"seed":0', f'"seed":{value}'.encode()) + b"\n"
    assert f'"seed":{value}'.encode() in bad
    r = run("rf-vote", [], input=good + bad)
    assert r.code == 1
    assert (f"Error: rf-vote: line 2: field candidates[0].seed: integer out of range ({side})"
            in r.stderr), r.stderr
    r = run("rf-vote", ["--skip-bad"], input=good + bad)
    assert r.code == 0 and len(r.records) == 1
    assert "line 2: skipped: field candidates[0].seed: integer out of range" in r.stderr


def test_int64_bounds_are_in_range(shop_db):
    task = full_task(shop_db)
    for value in (2**63 - 1, -2**63):
        task["candidates"][0]["seed"] = value
        r = run("rf-vote", [], input=[task])
        assert r.code == 0, r.stderr
        assert r.records[0]["candidates"][0]["seed"] == value
