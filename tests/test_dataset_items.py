"""rf-data's core on the items interface: a dataset yields DatasetItems and BadItems, and
rf-data checks them (bad ones counted in one line), skips missing or unreadable databases,
leaves out --exclude's tasks, takes the --limit/--seed sample exactly as ``pick`` does, and
writes hardness and the schema context (with an item's notes). A record-level dataset
(``tasks``, the escape hatch) still works, --exclude included."""

from __future__ import annotations

from pathlib import Path

import pytest

from rf_core.api import BadItem, DatasetItem, make_task, pick
from rf_core.data.dataset import with_notes
from rf_core.testing import registered, run_command, validate_records


class Listed:
    """An items dataset over a fixed list of entries."""

    name = "listed"
    options = ()

    def __init__(self, entries):
        self.entries = entries
        self.calls = []

    def items(self, **kwargs):
        self.calls.append(kwargs)
        return iter(self.entries)


class Records:
    """A record-level dataset (the escape hatch)."""

    name = "records"
    options = ()

    def __init__(self, db):
        self.db = db

    def tasks(self, *, root, split, limit, seed, values, report, **options):
        made = [make_task(id=f"records/{i}", dataset=self.name, split=split, db_id="shop",
                          db_path=self.db, question=f"q{i}?", gold_sql="SELECT 1",
                          values=values) for i in range(6)]
        return iter(pick(made, limit, seed))


def item(i: int, db: str, **fields) -> DatasetItem:
    base = dict(id=f"listed/{i}", db_id="shop", db_path=db, question=f"Question {i}?",
                gold_sql="SELECT count(*) FROM product", split="dev")
    return DatasetItem(**{**base, **fields})


def rf_data(impl, *args, input=None):
    with registered(impl):
        return run_command("rf-data", [impl.name, *args], input=input)


def test_items_become_tasks_as_the_builtins_make_them(shop_db):
    impl = Listed([item(i, shop_db) for i in range(5)])
    r = rf_data(impl, "--split", "dev", "--values", "2")
    assert r.exit_code == 0, r.stderr
    tasks = validate_records(r.stdout, "task")
    assert impl.calls[0].keys() == {"root", "split", "report"}
    expected = [make_task(id=f"listed/{i}", dataset="listed", split="dev", db_id="shop",
                          db_path=str(Path(shop_db).resolve()), question=f"Question {i}?",
                          gold_sql="SELECT count(*) FROM product", values=2)
                for i in range(5)]
    assert tasks == expected
    sample = validate_records(rf_data(impl, "--limit", "2", "--seed", "3").stdout)
    assert [t["id"] for t in sample] == [t["id"] for t in pick(expected, 2, 3)]


def test_bad_entries_are_counted_in_one_line(shop_db):
    entries = [item(0, shop_db), BadItem("is not a row"), item(2, shop_db, question=None),
               item(3, shop_db, gold_sql=7), {"id": "x"}, item(5, shop_db, id=""),
               item(6, shop_db, db_path=""), item(7, shop_db, notes=["x"]),
               item(8, shop_db, gold_sql=None)]
    r = rf_data(Listed(entries), "--split", "dev")
    assert r.exit_code == 0, r.stderr
    tasks = validate_records(r.stdout, "task")
    assert [t["id"] for t in tasks] == ["listed/0", "listed/8"]
    assert tasks[1]["gold_sql"] is None and tasks[1]["hardness"] is None
    lines = [line for line in r.stderr.splitlines() if "not questions" in line]
    assert lines == ["rf-data: skipped 7 of 9 dev item(s) that are not questions "
                     "(item 1 is not a row)"]


@pytest.mark.parametrize("fields,problem", [
    (None, "is a dict, not a DatasetItem"),
    (dict(question=None), "has no question"), (dict(gold_sql=7), "has a query that is not"),
    (dict(id=""), "has no id"), (dict(db_id=3), "has no db_id"),
    (dict(db_path=""), "has no database path"), (dict(split=""), "has no split"),
    (dict(notes=1), "has notes that are not a string"),
])
def test_each_problem_is_named(shop_db, fields, problem):
    bad = {"id": "x"} if fields is None else item(0, shop_db, **fields)
    r = rf_data(Listed([bad, item(1, shop_db)]))
    assert r.exit_code == 0 and f"(item 0 {problem}" in r.stderr, r.stderr


def test_missing_and_unreadable_databases_skip_their_items(shop_db, tmp_path):
    junk = tmp_path / "junk.sqlite"
    junk.write_text("not a database\n")
    entries = [item(0, str(tmp_path / "gone.sqlite"), db_id="gone"),
               item(1, str(junk), db_id="junk"), item(2, str(junk), db_id="junk"),
               item(3, shop_db)]
    r = rf_data(Listed(entries))
    assert r.exit_code == 0, r.stderr
    assert [t["id"] for t in validate_records(r.stdout)] == ["listed/3"]
    assert "skipped 1 dev task(s): database 'gone' is missing" in r.stderr
    assert "1 of 4 dev tasks skipped (1 missing or unreadable database(s)); 3 remain" \
        in r.stderr
    assert r.stderr.count("database 'junk': it is not a readable SQLite database") == 1


def test_a_relative_path_is_written_absolute(shop_db, monkeypatch):
    monkeypatch.chdir(Path(shop_db).parent)
    r = rf_data(Listed([item(0, Path(shop_db).name)]))
    assert validate_records(r.stdout)[0]["db_path"] == str(Path(shop_db).resolve())


def test_notes_end_the_schema_context(shop_db):
    r = rf_data(Listed([item(0, shop_db, notes="price is in cents\nfruit: a category"),
                        item(1, shop_db)]), "--values", "0")
    noted, plain = validate_records(r.stdout)
    assert noted["schema"] == (plain["schema"] + "\n-- Notes: price is in cents\n"
                               "-- fruit: a category")
    assert with_notes("", "x") == "-- Notes: x" and with_notes("S", None) == "S"


def test_exclude_leaves_tasks_out_before_the_sample(shop_db, tmp_path):
    impl = Listed([item(i, shop_db) for i in range(6)])
    first = rf_data(impl, "--limit", "2")
    assert first.exit_code == 0, first.stderr
    held = tmp_path / "held.jsonl"
    held.write_bytes(first.stdout)
    rest = rf_data(impl, "--exclude", str(held))
    assert [t["id"] for t in validate_records(rest.stdout)] == [
        f"listed/{i}" for i in range(2, 6)]
    assert f"left out 2 task(s) of {held}" in rest.stderr


def test_record_level_datasets_still_work(shop_db, tmp_path):
    impl = Records(shop_db)
    r = rf_data(impl, "--limit", "3", "--seed", "1")
    assert r.exit_code == 0, r.stderr
    tasks = validate_records(r.stdout, "task")
    assert [t["id"] for t in tasks] == [t["id"] for t in pick(
        [{"id": f"records/{i}"} for i in range(6)], 3, 1)]
    held = tmp_path / "held.jsonl"
    held.write_bytes(r.stdout)
    rest = rf_data(impl, "--exclude", str(held))
    assert len(validate_records(rest.stdout)) == 3 and "left out 3 task(s)" in rest.stderr
