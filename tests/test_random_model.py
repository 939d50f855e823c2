"""--model random:DIR: a model folder's architecture and tokenizer with seeded random weights
(throughput and memory without carrying the weights)."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

torch = pytest.importorskip("torch")

from rf_core.errors import RFError  # noqa: E402
from rf_core.model.loading import config_folder, load, random_folder, resolve  # noqa: E402


@pytest.fixture(scope="module")
def shapes_only(tiny_model, tmp_path_factory):
    """The tiny model's config and tokenizer without its weights, as the carry pack holds it."""
    folder = tmp_path_factory.mktemp("shapes") / "model"
    folder.mkdir()
    for path in Path(tiny_model).iterdir():
        if not path.name.endswith((".safetensors", ".bin")):
            shutil.copy(path, folder / path.name)
    return folder


def _weights(model) -> list:
    return [t.detach().clone() for t in model.state_dict().values()]


def test_random_weights_are_seeded_and_leave_the_callers_random_state(shapes_only):
    torch.manual_seed(123)
    before = torch.rand(3)
    torch.manual_seed(123)
    tok, first = load(f"random:{shapes_only}")
    after = torch.rand(3)
    assert torch.equal(before, after)  # building the model drew from its own stream
    _, second = load(f"random:{shapes_only}")
    assert all(torch.equal(a, b) for a, b in zip(_weights(first), _weights(second)))
    assert tok("SELECT 1")["input_ids"]
    assert first.config.num_hidden_layers > 0


def test_resolve_keeps_the_prefix_and_makes_the_folder_absolute(shapes_only, monkeypatch):
    monkeypatch.chdir(shapes_only.parent)
    location = resolve(f"random:{shapes_only.name}")
    assert location == f"random:{shapes_only}"
    assert random_folder(location) == shapes_only
    assert config_folder(location) == shapes_only
    assert random_folder(str(shapes_only)) is None
    assert config_folder(str(shapes_only)) == shapes_only


@pytest.mark.parametrize("make, says", [
    (lambda d: "random:", "is not a folder"),
    (lambda d: f"random:{d / 'nowhere'}", "is not a folder"),
    (lambda d: f"random:{d / 'empty'}", "has no config.json"),
])
def test_a_bad_random_model_is_one_line(make, says, tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(RFError, match=says) as info:
        resolve(make(tmp_path))
    assert "\n" not in str(info.value)


def test_rf_sample_and_rf_train_take_a_random_model(shapes_only, tmp_path):
    """Both model-taking commands accept random:DIR; answers of random weights run to
    max_new_tokens, and an adapter trained on the random model samples on it again."""
    from rf_core.testing import run_command

    tasks = run_command("rf-data", ["demo", "--split", "dev", "--limit", "2"]).records
    model = f"random:{shapes_only}"
    sampled = run_command("rf-sample", ["--sampler", "hf", "-m", model, "-k", "2",
                                        "--max-new-tokens", "5", "-t", "0"], input=tasks)
    assert sampled.exit_code == 0, sampled.stderr
    cands = [c for t in sampled.records for c in t["candidates"]]
    assert len(cands) == 4 and all(c["model"] == model for c in cands)
    examples = run_command("rf-inject", [], input=tasks).records
    trained = run_command("rf-train", ["--base", model, "--out", str(tmp_path / "adapter"),
                                       "--epochs", "1", "--batch-size", "2"], input=examples)
    assert trained.exit_code == 0, trained.stderr
    again = run_command("rf-sample", ["--sampler", "hf", "-m", model, "--adapter",
                                      str(tmp_path / "adapter"), "-k", "1",
                                      "--max-new-tokens", "3", "-t", "0"], input=tasks[:1])
    assert again.exit_code == 0, again.stderr


@pytest.mark.cuda
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_random_weights_are_built_on_the_gpu_the_same_each_time(shapes_only):
    _, first = load(f"random:{shapes_only}", dtype=torch.bfloat16, device="cuda")
    _, second = load(f"random:{shapes_only}", dtype=torch.bfloat16, device="cuda")
    assert next(first.parameters()).device.type == "cuda"
    assert all(torch.equal(a, b) for a, b in zip(_weights(first), _weights(second)))
