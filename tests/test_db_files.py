"""What rf-exec and rf-data do to the files of a database, and what they read from them:
WAL databases (nothing created beside them, the -wal's commits read and keyed), paths that
are not regular files, temporary storage, one snapshot per task, leftovers of killed runs."""

from __future__ import annotations

import hashlib
import json
import os
import sqlite3
import subprocess
import sys
import threading
from pathlib import Path

import pytest

import rf_core.exec.verify as verify
from rf_core.data.schema_context import describe_database
from rf_core.exec.sqlite import Executor, Limits
from conftest import make_task, run


def files(folder: Path) -> dict[str, str]:
    """Every file under ``folder`` by name, with its sha256: nothing added, nothing changed."""
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file()}


def wal_database(folder: Path) -> Path:
    """A WAL-mode database, cleanly closed (no -wal, no -shm): table a."""
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "w.sqlite"
    conn = sqlite3.connect(path)
    conn.execute("PRAGMA journal_mode = WAL")
    conn.executescript("""
        CREATE TABLE a (id INTEGER PRIMARY KEY, x INTEGER);
        INSERT INTO a VALUES (1, 10), (2, 20), (3, 30), (4, 40), (5, 50), (6, 60);
    """)
    conn.commit()
    conn.close()
    assert sorted(p.name for p in folder.iterdir()) == ["w.sqlite"]
    return path


def commit_to_wal(path: Path) -> sqlite3.Connection:
    """Commit table b into the -wal of ``path`` (no checkpoint); the open writer is returned,
    so the -wal and -shm stay as a live writer leaves them."""
    writer = sqlite3.connect(path)
    writer.execute("PRAGMA wal_autocheckpoint = 0")
    writer.executescript("""
        CREATE TABLE b (id INTEGER PRIMARY KEY, y INTEGER);
        INSERT INTO b VALUES (1, 7), (2, 8), (3, 9), (4, 10), (5, 11);
    """)
    writer.commit()
    assert (path.parent / "w.sqlite-wal").stat().st_size > 0
    return writer


def crashed_writer_copy(path: Path, folder: Path) -> Path:
    """The files a writer killed after its last commit leaves: main file and -wal, no -shm."""
    folder.mkdir()
    for suffix in ("", "-wal"):
        (folder / f"w.sqlite{suffix}").write_bytes(Path(f"{path}{suffix}").read_bytes())
    return folder / "w.sqlite"


GOLD_B = "SELECT y FROM b ORDER BY id"


def test_wal_database_last_commit_in_the_wal_is_read_and_nothing_is_created(tmp_path):
    live = wal_database(tmp_path / "live")
    writer = commit_to_wal(live)
    try:
        crashed = crashed_writer_copy(live, tmp_path / "crashed")
        for db in (live, crashed):
            before = files(db.parent)
            task = make_task(str(db), GOLD_B, [GOLD_B.lower(), "SELECT 7"])
            r = run("rf-exec", input=[task])
            assert r.code == 0, r.stderr
            out = r.records[0]
            assert out["gold_exec"]["ok"] and out["gold_exec"]["n_rows"] == 5, out["gold_exec"]
            assert [c["correct"] for c in out["candidates"]] == [True, False]
            assert files(db.parent) == before, f"{db.parent.name}: files created or changed"
    finally:
        writer.close()


def test_wal_database_without_a_wal_stays_without_one(tmp_path):
    db = wal_database(tmp_path / "clean")
    before = files(db.parent)
    task = make_task(str(db), "SELECT x FROM a", ["SELECT x FROM a", "SELECT 1"])
    r = run("rf-exec", ["-o", "variants", "2", "-o", "variants_dir", str(tmp_path / "cache")],
            input=[task])
    assert r.code == 0, r.stderr
    assert [c["correct"] for c in r.records[0]["candidates"]] == [True, False]
    assert files(db.parent) == before


def test_variant_cache_is_keyed_on_what_a_wal_database_holds(tmp_path):
    db = wal_database(tmp_path / "db")
    cache = ["-o", "variants", "2", "-o", "variants_dir", str(tmp_path / "cache")]
    first = run("rf-exec", cache, input=[make_task(str(db), "SELECT x FROM a",
                                                   ["SELECT x FROM a"])])
    assert first.records[0]["candidates"][0]["variants"]["used"] == 2
    writer = commit_to_wal(db)  # the main file's bytes stay as they were
    try:
        before = files(db.parent)
        r = run("rf-exec", cache, input=[make_task(str(db), GOLD_B, [GOLD_B.lower()])])
        assert r.code == 0, r.stderr
        cand = r.records[0]["candidates"][0]
        assert cand["correct"] is True
        assert cand["variants"] == {"used": 2, "passed": 2}, "variants built without table b"
        assert files(db.parent) == before
    finally:
        writer.close()


def spider_layout(root: Path, db_id: str) -> Path:
    (root / "database" / db_id).mkdir(parents=True)
    item = {"db_id": db_id, "question": "How many?", "query": "SELECT count(*) FROM b"}
    (root / "dev.json").write_text(json.dumps([item]))
    return root / "database" / db_id / f"{db_id}.sqlite"


def test_rf_data_reads_a_wal_database_without_creating_files(tmp_path):
    root = tmp_path / "spider"
    target = spider_layout(root, "w")
    db = wal_database(tmp_path / "src")
    writer = commit_to_wal(db)
    try:
        crashed = crashed_writer_copy(db, tmp_path / "crashed")
        for suffix in ("", "-wal"):
            Path(f"{target}{suffix}").write_bytes(Path(f"{crashed}{suffix}").read_bytes())
        before = files(root)
        r = run("rf-data", ["spider", "--root", str(root), "--split", "dev"])
        assert r.code == 0, r.stderr
        assert "CREATE TABLE b (" in r.records[0]["schema"], r.records[0]["schema"]
        assert files(root) == before
        before = files(db.parent)
        assert "CREATE TABLE b (" in describe_database(str(db))
        assert files(db.parent) == before
    finally:
        writer.close()


class OpenDetector:
    """Opens a FIFO's write end whenever someone opens it for reading, so a reader that
    should never have opened it gets end of file instead of blocking the test; ``opened``
    says whether that happened."""

    def __init__(self, fifo: Path):
        self.fifo = fifo
        self.opened = False
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._watch, daemon=True)
        self._thread.start()

    def _watch(self):
        while not self._stop.wait(0.01):
            try:
                fd = os.open(self.fifo, os.O_WRONLY | os.O_NONBLOCK)
            except OSError:  # ENXIO: no reader
                continue
            self.opened = True
            os.close(fd)

    def stop(self):
        self._stop.set()
        self._thread.join()


@pytest.fixture(params=["/dev/zero", "/dev/null", "fifo"])
def odd_path(request, tmp_path):
    if request.param != "fifo":
        if not os.path.exists(request.param):
            pytest.skip(f"{request.param} is absent here")
        yield request.param, None
        return
    fifo = tmp_path / "pipe.sqlite"
    os.mkfifo(fifo)
    detector = OpenDetector(fifo)
    try:
        yield str(fifo), detector
    finally:
        detector.stop()


def test_a_device_or_fifo_as_database_is_one_error_per_task(odd_path, tmp_path):
    path, detector = odd_path
    cache = tmp_path / "cache"
    tasks = [make_task(path, "SELECT 1", ["SELECT 1"], id=f"d/{i}") for i in range(2)]
    r = run("rf-exec", ["-o", "variants", "2", "-o", "variants_dir", str(cache)], input=tasks)
    assert r.code == 0, r.stderr
    for task in r.records:
        assert "not a regular file" in task["gold_exec"]["error"], task["gold_exec"]
        assert task["candidates"][0]["correct"] is False
    assert r.stderr.count("not a regular file") == 2, r.stderr  # one line per task
    assert not cache.exists() or not any(cache.iterdir()), "a cache folder for a device"
    if detector is not None:
        assert not detector.opened, "the FIFO was opened"


def test_rf_data_skips_a_database_that_is_not_a_regular_file(tmp_path):
    root = tmp_path / "spider"
    target = spider_layout(root, "odd")
    os.mkfifo(target)
    detector = OpenDetector(target)
    try:
        r = run("rf-data", ["spider", "--root", str(root), "--split", "dev"])
        with pytest.raises(Exception, match="not a regular file"):
            describe_database(str(target))
    finally:
        detector.stop()
    assert r.code == 0, r.stderr
    assert r.records == []
    assert "database 'odd' is not a regular file" in r.stderr, r.stderr
    assert not detector.opened, "the FIFO was opened"


def test_sorts_spill_to_memory_not_to_the_temporary_folder(shop_db):
    io = Path("/proc/self/io")
    if not io.is_file():
        pytest.skip("needs /proc/self/io (Linux) to count bytes written")

    def written() -> int:
        return int(dict(line.split(": ") for line in io.read_text().splitlines())["wchar"])

    ex = Executor(Limits(timeout_s=600, max_rows=10))
    # about 25 MB of rows to sort, over ten times SQLite's default page cache
    sql = ("SELECT printf('%040d', a.n * 1000 + b.n) FROM big a, "
           "(SELECT n FROM big LIMIT 300) b ORDER BY random()")
    start = written()
    res = ex.run(shop_db, sql)
    delta = written() - start
    ex.close()
    assert res.ok and res.truncated, res.error
    assert delta < 1 << 20, f"{delta} bytes written while sorting"
    # the heap limit bounds it; in a process of its own, since SQLite's heap limit is
    # process-wide and a pragma can only lower it (here it would stay 8 MiB for every later
    # test, and for the rf-exec workers they fork)
    probe = ("import sys; from rf_core.exec.sqlite import Executor, Limits; "
             "ex = Executor(Limits(timeout_s=600, max_rows=10, heap_bytes=8 << 20)); "
             "res = ex.run(sys.argv[1], sys.argv[2]); print(res.ok, res.error)")
    proc = subprocess.run([sys.executable, "-c", probe, str(shop_db), sql],
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.startswith("False ") and "memory" in proc.stdout.lower(), proc.stdout


def test_a_task_reads_one_snapshot_while_a_writer_commits(shop_db, monkeypatch):
    verify._init_worker(Limits(), "official")
    real = verify._executor.run
    commits = []

    def run_then_write(db, sql):
        res = real(db, sql)
        writer = sqlite3.connect(shop_db, timeout=0)
        try:
            writer.execute("INSERT INTO product VALUES (NULL, 'Plum', 0.4, 'fruit')")
            writer.commit()
            commits.append(sql)
        except sqlite3.OperationalError as exc:
            assert "locked" in str(exc)
        finally:
            writer.close()
        return res

    monkeypatch.setattr(verify._executor, "run", run_then_write)
    gold = "SELECT count(*) FROM product"
    cands = ["select count(*) from product", "SELECT count(id) FROM product"]
    gold_summary, outs = verify.check_job((shop_db, gold, cands))
    assert gold_summary["ok"]
    assert [o[1] for o in outs] == [True, True], "a commit between the task's queries"
    assert commits == [], "the writer committed inside the task"
    # between tasks the writer gets through, and the next task sees its rows
    conn = sqlite3.connect(shop_db, timeout=0)
    conn.execute("INSERT INTO product VALUES (NULL, 'Fig', 0.9, 'fruit')")
    conn.commit()
    conn.close()
    gold_summary, outs = verify.check_job((shop_db, gold, cands))
    assert gold_summary["n_rows"] == 1 and all(o[1] for o in outs)
    verify._executor.close()


def test_a_task_resent_onto_a_changed_database_is_an_error(shop_db):
    """A task whose worker was killed is sent again with what it had finished; if the
    database changed in between, its kept verdicts were made on another database."""
    from rf_core.exec.pool import Slot

    verify._init_worker(Limits(), "official")
    gold = "SELECT count(*) FROM product"
    slot = Slot([0.0] * Slot.WIDTH, 0)
    kept = {}
    slot.keep = lambda index, value: kept.__setitem__(index, value)
    gold_summary, outs = verify.check_job((shop_db, gold, ["SELECT 5", "SELECT 6"]), slot)
    assert gold_summary["ok"] and [o[1] for o in outs] == [True, False]
    conn = sqlite3.connect(shop_db)
    conn.execute("DELETE FROM product WHERE id = 5")
    conn.commit()
    conn.close()
    resent = Slot([0.0] * Slot.WIDTH, 0)
    resent.kept = {k: v for k, v in kept.items() if k != 2}  # killed on the second candidate
    resent.keep = lambda index, value: None
    gold_summary, outs = verify.check_job((shop_db, gold, ["SELECT 5", "SELECT 6"]), resent)
    assert not gold_summary["ok"] and "changed" in gold_summary["error"], gold_summary
    assert [o[1] for o in outs] == [False, False]
    verify._executor.close()


def test_leftovers_of_killed_runs_are_cleaned_and_none_are_made(tmp_path, monkeypatch):
    import tempfile

    db = tmp_path / "people.sqlite"
    conn = sqlite3.connect(db)
    conn.executescript("CREATE TABLE p (id INTEGER PRIMARY KEY, n INTEGER);"
                       "INSERT INTO p VALUES (1, 1), (2, 2), (3, 3);")
    conn.commit()
    conn.close()
    dead = subprocess.Popen(["true"])
    dead.wait()
    alive = subprocess.Popen(["sleep", "60"])
    cache = tmp_path / "cache"
    old = cache / "people-0123456789abcdef0123"
    old.mkdir(parents=True)
    stale = [old / f".a2-s0-v0.sqlite.{dead.pid}.tmp",
             old / f".a2-s0-v0.sqlite.{dead.pid}.tmp-journal"]
    busy = old / f".a2-s0-v1.sqlite.{alive.pid}.tmp"
    for p in stale + [busy]:
        p.write_bytes(b"x" * 100)
    empty = cache / "notes-00000000000000000000"
    empty.mkdir()
    os.utime(empty, (0, 0))  # made long ago: an empty folder just made may be in use
    fresh = cache / "fresh-11111111111111111111"
    fresh.mkdir()
    mine = cache / "keep-this-folder"  # not a name the cache makes: never touched
    mine.mkdir()
    temp = tmp_path / "tmp"
    temp.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(temp))
    stale_copy = temp / f"rf-db-{dead.pid}-abcd1234"
    (stale_copy / "w.sqlite").parent.mkdir()
    (stale_copy / "w.sqlite").write_bytes(b"x")
    busy_copy = temp / f"rf-db-{alive.pid}-abcd1234"
    busy_copy.mkdir()
    notes = tmp_path / "notes.txt"
    notes.write_text("not a database\n")
    try:
        tasks = [make_task(str(db), "SELECT n FROM p", ["SELECT n FROM p"], id="c/0"),
                 make_task(str(notes), "SELECT 1", ["SELECT 1"], id="c/1")]
        r = run("rf-exec", ["-o", "variants", "1", "-o", "variants_dir", str(cache)],
                input=tasks)
        assert r.code == 0, r.stderr
        assert r.records[0]["candidates"][0]["variants"]["used"] == 1
        assert "not an SQLite database" in r.records[1]["gold_exec"]["error"]
        assert not any(p.exists() for p in stale), "stale build files of a dead process"
        assert busy.exists(), "a live process's build file was removed"
        assert not empty.exists() and mine.is_dir() and fresh.is_dir()
        assert not stale_copy.exists() and busy_copy.is_dir()
        folders = sorted(p.name for p in cache.iterdir())
        assert [f for f in folders if f.startswith("notes")] == [], folders
        assert [f for f in folders if f.startswith("people-") and f != old.name] != []
        assert list(temp.iterdir()) == [busy_copy], "this run's copies stayed behind"
    finally:
        alive.kill()
        alive.wait()


def test_a_hot_journal_is_an_error_and_is_left_alone(tmp_path):
    """A writer killed mid-transaction leaves a hot journal: reading the file as it is would
    see half a transaction, and rolling it back would write. Each task records an error."""
    live = tmp_path / "live.sqlite"
    conn = sqlite3.connect(live, isolation_level=None)
    conn.executescript("CREATE TABLE a (x INTEGER);"
                       "WITH RECURSIVE r(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM r "
                       "WHERE n < 20000) INSERT INTO a SELECT n FROM r;")
    conn.execute("PRAGMA cache_size = 2")  # so the uncommitted change spills to the file
    conn.execute("BEGIN")
    conn.execute("UPDATE a SET x = -x")
    crashed = tmp_path / "crashed"
    crashed.mkdir()
    for suffix in ("", "-journal"):
        (crashed / f"db.sqlite{suffix}").write_bytes(Path(f"{live}{suffix}").read_bytes())
    conn.execute("ROLLBACK")
    conn.close()
    before = files(crashed)
    db = str(crashed / "db.sqlite")
    r = run("rf-exec", ["-o", "variants", "2", "-o", "variants_dir", str(tmp_path / "cache")],
            input=[make_task(db, "SELECT sum(x) FROM a", ["SELECT sum(x) FROM a"])])
    assert r.code == 0, r.stderr
    out = r.records[0]
    assert not out["gold_exec"]["ok"] and "readonly" in out["gold_exec"]["error"]
    assert out["candidates"][0]["correct"] is False
    assert files(crashed) == before


def test_a_database_locked_by_a_writer_is_an_error_per_task(shop_db):
    writer = sqlite3.connect(shop_db, isolation_level=None)
    writer.execute("BEGIN EXCLUSIVE")
    try:
        r = run("rf-exec", ["--jobs", "1"],
                input=[make_task(shop_db, "SELECT count(*) FROM product",
                                 ["SELECT count(*) FROM product", "SELECT 5"])])
    finally:
        writer.execute("ROLLBACK")
        writer.close()
    assert r.code == 0, r.stderr
    out = r.records[0]
    assert "database is locked" in out["gold_exec"]["error"]
    assert [c["correct"] for c in out["candidates"]] == [False, False]


def _build(args):
    from rf_core.exec.variants import VariantCache

    db, root = args
    return VariantCache(2, root=root).paths(db)


def test_concurrent_builds_of_one_cache_give_the_same_bytes(tmp_path):
    import multiprocessing as mp

    db = tmp_path / "db.sqlite"
    conn = sqlite3.connect(db)
    conn.executescript("""
        CREATE TABLE t (id INTEGER PRIMARY KEY, name TEXT UNIQUE, v REAL);
        WITH RECURSIVE r(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM r WHERE n < 3000)
            INSERT INTO t SELECT n, 'n' || n, n * 0.25 FROM r;
    """)
    conn.commit()
    conn.close()
    shared = str(tmp_path / "shared")
    with mp.get_context("spawn").Pool(3) as pool:
        results = pool.map(_build, [(str(db), shared), (str(db), shared),
                                    (str(db), str(tmp_path / "alone"))])
    assert results[0] == results[1] and len(results[0]) == 2
    for a, b in zip(results[0], results[2]):
        assert Path(a).read_bytes() == Path(b).read_bytes()
    assert not [p for p in Path(shared).rglob(".*") if p.is_file()], "build files left"
