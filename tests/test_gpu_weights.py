"""bench/gpu_weights.sh on a small fake GGUF: split into piece folders, receive them one call
at a time, join and check; a missing or damaged piece is one line and exit 1. Nothing is
downloaded or converted (--sha256/--size stand in for the catalogue, --no-convert)."""

from __future__ import annotations

import hashlib
import os
import subprocess
from pathlib import Path

import pytest

from conftest import ROOT

NAME = "qwen2.5-coder-1.5b"  # a catalogue name: the split reads its cache folder


def _weights(*args: str, env: dict) -> subprocess.CompletedProcess:
    return subprocess.run(["bash", str(ROOT / "bench" / "gpu_weights.sh"), *args], cwd=ROOT,
                          env=env, capture_output=True, text=True, timeout=60)


@pytest.fixture
def fake(tmp_path):
    """A 2500-byte 'model.gguf' in a model cache of its own; its size and sha256."""
    data = os.urandom(2500)
    gguf = tmp_path / "cache" / "models" / NAME / "model.gguf"
    gguf.parent.mkdir(parents=True)
    gguf.write_bytes(data)
    env = {**os.environ, "RF_CACHE_DIR": str(tmp_path / "cache")}
    check = ["--sha256", hashlib.sha256(data).hexdigest(), "--size", str(len(data))]
    return data, env, check


def _split(tmp_path, env, check) -> Path:
    out = tmp_path / "pieces"
    proc = _weights("split", NAME, "--out", str(out), "--piece-size", "1000", *check, env=env)
    assert proc.returncode == 0, proc.stderr
    assert "3 pieces of at most 1000 bytes" in proc.stdout
    return out / NAME


def test_split_receive_join(tmp_path, fake):
    data, env, check = fake
    pieces = _split(tmp_path, env, check)
    assert sorted(p.name for p in pieces.iterdir()) == ["01", "02", "03"]
    assert [len((pieces / n / "part").read_bytes()) for n in ("01", "02", "03")] == [1000, 1000, 500]
    sums = (pieces / "01" / "SHA256SUMS").read_text()
    assert sums == (pieces / "03" / "SHA256SUMS").read_text()  # each folder carries the list
    assert f"{hashlib.sha256(data).hexdigest()}  model.gguf" in sums

    # each device call carries one folder: receive sees only that piece in its checkout copy
    gather = tmp_path / "gather"
    for nn in ("03", "01", "02"):
        carried = tmp_path / f"call-{nn}" / NAME
        carried.mkdir(parents=True)
        (carried / nn).symlink_to(pieces / nn)
        proc = _weights("receive", NAME, "--from", str(carried.parent), "--into", str(gather),
                        env=env)
        assert proc.returncode == 0, proc.stderr
        assert f"received {nn};" in proc.stdout
    assert "3 of 3 pieces there" in proc.stdout

    into = tmp_path / "model"
    proc = _weights("join", NAME, "--from", str(gather), "--into", str(into), "--no-convert",
                    *check, env=env)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == str(into / "model.gguf")
    assert (into / "model.gguf").read_bytes() == data
    assert not list(into.glob("*.tmp"))


def test_join_names_missing_and_damaged_pieces(tmp_path, fake):
    data, env, check = fake
    pieces = _split(tmp_path, env, check)
    gather = tmp_path / "gather"
    proc = _weights("receive", NAME, "2", "--from", str(pieces.parent), "--into", str(gather),
                    env=env)
    assert proc.returncode == 0 and "received 02; 1 of 3" in proc.stdout, proc.stderr
    join = ["join", NAME, "--from", str(gather), "--into", str(tmp_path / "m"), "--no-convert"]

    proc = _weights(*join, *check, env=env)
    assert proc.returncode == 1
    assert proc.stderr.startswith("gpu_weights.sh: missing pieces 01 03 of 3 in ")
    assert len(proc.stderr.splitlines()) == 1

    _weights("receive", NAME, "--from", str(pieces.parent), "--into", str(gather), env=env)
    (gather / "02.part").write_bytes(b"x" * 1000)  # damaged after it was received
    proc = _weights(*join, *check, env=env)
    assert proc.returncode == 1 and "pieces 02 in " in proc.stderr and "fail their sha256" in proc.stderr

    (gather / "02.part").write_bytes((pieces / "02" / "part").read_bytes())
    wrong = ["--sha256", "0" * 64, "--size", str(len(data))]  # the catalogue disagrees
    proc = _weights(*join, *wrong, env=env)
    assert proc.returncode == 1 and "the joined file has 2500 bytes" in proc.stderr
    assert not (tmp_path / "m" / "model.gguf").exists() and not list((tmp_path / "m").glob("*"))

    bad = tmp_path / "bad"
    (bad / NAME / "01").mkdir(parents=True)
    (bad / NAME / "01" / "part").write_bytes(b"y" * 1000)
    (bad / NAME / "01" / "SHA256SUMS").write_text((pieces / "01" / "SHA256SUMS").read_text())
    proc = _weights("receive", NAME, "--from", str(bad), "--into", str(tmp_path / "g2"), env=env)
    assert proc.returncode == 1 and "piece 01 fails its sha256" in proc.stderr
    assert not (tmp_path / "g2" / "01.part").exists()


def test_split_checks_the_file_and_the_input(tmp_path, fake):
    data, env, check = fake
    proc = _weights("split", NAME, "--out", str(tmp_path / "o"), "--sha256", "0" * 64,
                    "--size", str(len(data)), env=env)
    assert proc.returncode == 1 and "fails its sha256" in proc.stderr
    assert f"rf-model fetch {NAME}" in proc.stderr and not (tmp_path / "o" / NAME).exists()
    empty = {**env, "RF_CACHE_DIR": str(tmp_path / "none")}
    proc = _weights("split", NAME, *check, env=empty)
    assert proc.returncode == 1 and f"run rf-model fetch {NAME}" in proc.stderr
    proc = _weights("split", NAME, "--piece-size", str(61 * 1024 * 1024), *check, env=env)
    assert proc.returncode == 2 and "--piece-size takes bytes from 1 to 62914560" in proc.stderr
    proc = _weights("split", "no-such-model", env=env)
    assert proc.returncode == 2 and "not in the model catalogue" in proc.stderr
    proc = _weights("mangle", NAME, env=env)
    assert proc.returncode == 2 and "unknown mode 'mangle'" in proc.stderr
    for proc in [_weights("join", env=env), _weights("receive", NAME, "--bogus", env=env)]:
        assert proc.returncode == 2 and len(proc.stderr.splitlines()) == 1
        assert "Traceback" not in proc.stderr
