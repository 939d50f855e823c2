"""rf-train and rf-sample check what they pass to torch and peft before loading a model (a
bad value is one usage line naming its option, exit 2), and rf-train fails when it applied no
optimizer step instead of writing an untrained adapter."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from conftest import make_task, run
from test_train import FAST, examples, train

# a model that does not exist: a check that runs before loading fails on the option, not this
NO_MODEL = "no-such-model-folder"


def _message(stderr: str) -> str:
    """The one message line (a usage error's Usage/Try lines aside); no traceback."""
    lines = [ln for ln in stderr.splitlines()
             if ln.strip() and not ln.startswith(("Usage:", "Try '"))]
    assert len(lines) == 1, stderr
    return lines[0]


@pytest.mark.parametrize("args,named", [
    (["--lr", "-1"], "'--lr'"),
    (["--lr", "0"], "'--lr'"),
    (["--seed", str(2**63)], "'--seed'"),
    (["--seed", str(-2**63 - 1)], "'--seed'"),
    (["-o", "device", "banana"], "option 'device'"),
    (["-o", "device", "cuda:x"], "option 'device'"),
    (["-o", "rank", "100000000"], "option 'rank'"),
    (["-o", "rank", str(2**70)], "option 'rank'"),
    (["-o", "weight_decay", "-1"], "option 'weight_decay'"),
])
def test_train_refuses_bad_values_before_loading(tmp_path, args, named):
    r = train(NO_MODEL, tmp_path / "a", examples(1), *args)
    assert r.code == 2, r.stderr
    line = _message(r.stderr)
    assert line.startswith("Error:") and named in line, line
    assert NO_MODEL not in r.stderr
    assert not (tmp_path / "a").exists()


def test_train_refuses_a_cuda_device_the_machine_lacks(tmp_path):
    import torch

    count = torch.cuda.device_count() if torch.cuda.is_available() else 0
    r = train(NO_MODEL, tmp_path / "a", examples(1), "-o", "device", f"cuda:{count}")
    assert r.code == 1, r.stderr
    line = _message(r.stderr)
    assert f"option 'device': this machine has no cuda:{count}" in line, line
    assert NO_MODEL not in r.stderr


def test_train_names_a_lora_target_the_model_lacks(tiny_model, tmp_path):
    r = train(tiny_model, tmp_path / "a", examples(1), "-o", "target", "banana")
    assert r.code == 2, r.stderr
    line = _message(r.stderr)
    assert "option 'target' of trainer 'peft': 'banana' matches no module" in line, line
    assert "q_proj" in line
    assert not (tmp_path / "a").exists()


@pytest.mark.parametrize("out", [".", "..", "/"])
def test_train_refuses_to_replace_the_current_folder(tmp_path, monkeypatch, out):
    work = tmp_path / "work"
    work.mkdir()
    (work / "keep.txt").write_text("mine")
    monkeypatch.chdir(work)
    r = train(NO_MODEL, out, examples(1), "--force")
    assert r.code == 2, r.stderr
    line = _message(r.stderr)
    assert "'--out'" in line and "current folder or one above it" in line, line
    assert (work / "keep.txt").read_text() == "mine"


def test_train_refuses_to_replace_a_folder_that_is_not_an_adapter(tmp_path):
    other = tmp_path / "notes"
    other.mkdir()
    (other / "keep.txt").write_text("mine")
    for extra in ((), ("--force",)):
        r = train(NO_MODEL, other, examples(1), *extra)
        assert r.code == 2, r.stderr
        line = _message(r.stderr)
        assert "'--out'" in line and "is not an adapter folder" in line, line
    assert (other / "keep.txt").read_text() == "mine"


def test_train_replaces_an_adapter_and_an_empty_folder(tiny_model, tmp_path):
    out = tmp_path / "a"
    out.mkdir()  # empty: nothing to lose
    r = train(tiny_model, out, examples(2), *FAST, "--epochs", "1", "--force")
    assert r.code == 0, r.stderr
    r = train(tiny_model, out, examples(2), *FAST, "--epochs", "1", "--force")
    assert r.code == 0, r.stderr


def _nan_model(tiny_model: str, folder: Path) -> str:
    """The tiny model with one NaN weight: every step's loss is NaN."""
    import torch
    from safetensors.torch import load_file, save_file

    shutil.copytree(tiny_model, folder)
    weights = load_file(folder / "model.safetensors")
    name = next(n for n in weights if n.endswith("embed_tokens.weight"))
    weights[name] = weights[name].clone()
    weights[name][:, 0] = float("nan")
    save_file(weights, folder / "model.safetensors", metadata={"format": "pt"})
    return str(folder)


@pytest.mark.parametrize("extra", [(), ("-o", "max_bad_steps", "1000")])
def test_train_fails_when_no_step_was_applied(tiny_model, tmp_path, extra):
    model = _nan_model(tiny_model, tmp_path / "nan-model")
    # two examples, batch size 2, one epoch: one step, under any max_bad_steps limit
    r = train(model, tmp_path / "a", examples(2), *FAST, "--epochs", "1", *extra)
    assert r.code == 1, r.stderr
    assert r.stdout == b""
    errors = [ln for ln in r.stderr.splitlines() if ln.startswith("Error:")]
    assert errors == ["Error: rf-train: no optimizer step was applied: all 1 step(s) had a "
                      "non-finite loss or gradient norm; no adapter was written"], r.stderr
    assert not (tmp_path / "a").exists() and not (tmp_path / "a.partial").exists()


@pytest.mark.parametrize("weight", [1e308, 1e7, 10**30])
def test_train_refuses_an_absurd_weight(tmp_path, weight):
    line = json.dumps(examples(1)[0] | {"weight": weight}).encode() + b"\n"  # any int size
    r = run("rf-train", ["--base", NO_MODEL, "--out", str(tmp_path / "a")], input=line)
    assert r.code == 1, r.stderr
    assert _message(r.stderr).startswith(
        "Error: rf-train: line 1: field weight: expected a number at most 1000000, got")
    assert not (tmp_path / "a").exists()


@pytest.mark.parametrize("sampler", ["hf", "cb"])
@pytest.mark.parametrize("args,named", [
    (["-o", "device", "banana"], "option 'device'"),
    (["--seed", str(2**63)], "'--seed'"),
    (["--seed", str(-2**63 - 1)], "'--seed'"),
])
def test_sample_refuses_bad_values_before_loading(shop_db, sampler, args, named):
    r = run("rf-sample", ["--sampler", sampler, "--model", NO_MODEL, *args],
            input=[make_task(shop_db, "SELECT 1", None, id="s/0", question="How many?")])
    assert r.code == 2, r.stderr
    line = _message(r.stderr)
    assert line.startswith("Error:") and named in line, line
    assert r.stdout == b""


def test_sample_refuses_a_cuda_device_the_machine_lacks(shop_db):
    import torch

    count = torch.cuda.device_count() if torch.cuda.is_available() else 0
    r = run("rf-sample", ["--sampler", "hf", "--model", NO_MODEL, "-o", "device",
                          f"cuda:{count}"],
            input=[make_task(shop_db, "SELECT 1", None, id="s/0", question="How many?")])
    assert r.code == 1, r.stderr
    assert f"option 'device': this machine has no cuda:{count}" in _message(r.stderr)


def test_seed_bounds_are_accepted(tiny_model, shop_db):
    task = make_task(shop_db, "SELECT 1", None, id="s/0", question="How many?")
    for seed in (2**63 - 1, -2**63):
        r = run("rf-sample", ["--sampler", "hf", "--model", tiny_model, "--max-new-tokens", "2",
                              "--seed", str(seed)], input=[task])
        assert r.code == 0, r.stderr
        # hf candidates share a batch's random stream: no seed reproduces one (README)
        assert r.records[0]["candidates"][0]["seed"] is None
