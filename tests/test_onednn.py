"""Frozen linear layers on oneDNN's packed kernels (rf_core.model.onednn): the same outputs as
torch's own up to rounding, gradients to the input only, trainable layers left alone, the
sampler's and the trainer's ``kernels`` option; and the CPU allocator settings of the model
commands (rf_core.model.environment.default_host_allocator); the fp32 copy of a converted
model that CPU runs load (rf_core.model.loading.fp32_folder)."""

from __future__ import annotations

import pytest

torch = pytest.importorskip("torch")

from rf_core.model import environment, onednn  # noqa: E402

needs_onednn = pytest.mark.skipif(not onednn.available(),
                                  reason="this torch has no oneDNN packed linear kernels")


def _layers():
    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Linear(32, 48), torch.nn.GELU(),
                              torch.nn.Linear(48, 16, bias=False))
    return net


@needs_onednn
@pytest.mark.parametrize("shape", [(1, 32), (3, 32), (2, 5, 32), (700, 32)])
def test_packed_layers_compute_what_torch_does(shape):
    net = _layers().requires_grad_(False)
    x = torch.randn(*shape)
    expected = net(x)
    assert onednn.pack_linears(net) == 2
    assert all(type(m).__name__ == "PackedLinear" for m in (net[0], net[2]))
    got = net(x)
    assert got.shape == expected.shape
    torch.testing.assert_close(got, expected, rtol=1e-5, atol=1e-5)
    # a non-contiguous input (a transposed view) is read as its values
    xt = torch.randn(32, shape[0]).t()
    torch.testing.assert_close(net(xt), _unpacked(net)(xt), rtol=1e-5, atol=1e-5)


def _unpacked(net):
    """A copy of ``net`` on torch's own kernels."""
    plain = _layers()
    plain.load_state_dict(net.state_dict())
    return plain.requires_grad_(False)


@needs_onednn
def test_the_input_gets_its_gradient_and_the_frozen_weights_none():
    net = _layers().requires_grad_(False)
    plain = _unpacked(net)
    onednn.pack_linears(net)
    x1 = torch.randn(4, 7, 32, requires_grad=True)
    x2 = x1.detach().clone().requires_grad_(True)
    (net(x1) ** 2).sum().backward()
    (plain(x2) ** 2).sum().backward()
    torch.testing.assert_close(x1.grad, x2.grad, rtol=1e-4, atol=1e-5)
    assert all(p.grad is None for p in net.parameters())


@needs_onednn
def test_trainable_layers_stay_on_torch_and_learn():
    net = _layers()
    net[0].requires_grad_(False)  # frozen: packed; net[2] trains
    assert onednn.pack_linears(net) == 1
    assert type(net[0]).__name__ == "PackedLinear" and type(net[2]) is torch.nn.Linear
    net(torch.randn(3, 32)).sum().backward()
    assert net[2].weight.grad is not None and net[0].weight.grad is None
    # a packed layer made trainable after all runs on torch's kernels, with its gradient
    net[0].requires_grad_(True)
    net(torch.randn(3, 32)).sum().backward()
    assert net[0].weight.grad is not None


@needs_onednn
def test_other_dtypes_are_left_alone():
    net = _layers().requires_grad_(False).to(torch.bfloat16)
    assert onednn.pack_linears(net) == 0
    assert type(net[0]) is torch.nn.Linear


@needs_onednn
def test_the_hf_sampler_packs_on_a_cpu_unless_told_not_to(tiny_model):
    from rf_core.api import SampleRequest
    from rf_plugins.hf import HFSampler

    request = SampleRequest(model=tiny_model, adapter=None, k=1, temperature=0.0, top_p=1.0,
                            max_new_tokens=8, seed=0)
    said: list[str] = []
    run = HFSampler().load(request, report=said.append, device="cpu")
    kinds = {type(m).__name__ for m in run.mdl.modules() if isinstance(m, torch.nn.Linear)}
    assert kinds == {"PackedLinear"}
    assert any("linear layers on oneDNN's packed fp32 kernels" in line for line in said)
    plain = HFSampler().load(request, report=said.append, device="cpu", kernels="torch")
    assert {type(m) for m in plain.mdl.modules()
            if isinstance(m, torch.nn.Linear)} == {torch.nn.Linear}
    conversations = [[{"role": "user", "content": f"question {i}"}] for i in range(3)]
    assert run.generate(conversations) == plain.generate(conversations)


@needs_onednn
@pytest.mark.parametrize("kernels", ["auto", "torch"])
def test_rf_train_packs_the_frozen_layers_on_a_cpu(tiny_model, tmp_path, kernels):
    from conftest import run

    rows = [{"schema_version": 1, "kind": "example", "task_id": f"t{i}", "db_id": "d",
             "messages": [{"role": "user", "content": f"q {i}"}], "completion": "SELECT 1",
             "source": "self", "weight": 1} for i in range(4)]
    r = run("rf-train", ["--base", tiny_model, "--out", str(tmp_path / "adapter"),
                         "--epochs", "1", "--batch-size", "2", "-o", "kernels", kernels],
            input=rows)
    assert r.code == 0, r.stderr
    said = "frozen linear layers on oneDNN's packed fp32 kernels" in r.stderr
    assert said == (kernels == "auto")
    assert (tmp_path / "adapter" / "adapter_config.json").is_file()


def test_the_host_allocator_settings_respect_the_users():
    import platform

    env: dict = {}
    done = environment.default_host_allocator(env)
    assert done == (["mallopt"] if platform.libc_ver()[0] == "glibc" else [])
    # torch is imported in this process already: its allocator has read the variable
    assert "THP_MEM_ALLOC_ENABLE" not in env
    mine = {"THP_MEM_ALLOC_ENABLE": "0", "MALLOC_TOP_PAD_": "0"}
    assert environment.default_host_allocator(mine) == []
    assert mine == {"THP_MEM_ALLOC_ENABLE": "0", "MALLOC_TOP_PAD_": "0"}


def test_a_model_command_sets_huge_pages_before_torch_loads(tmp_path):
    import subprocess
    import sys

    code = ("import os, sys\n"
            "from rf_core.model import environment\n"
            "done = environment.default_host_allocator()\n"
            "import torch\n"
            "print(os.environ.get('THP_MEM_ALLOC_ENABLE'), done)\n")
    env = {k: v for k, v in __import__("os").environ.items()
           if k != "THP_MEM_ALLOC_ENABLE" and k not in environment.MALLOC_ENV}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         env=env, check=True).stdout.split()
    assert out[0] == "1" and "'THP_MEM_ALLOC_ENABLE=1'" in " ".join(out)


def test_the_fp32_copy_of_a_converted_model_holds_its_bf16_values(tmp_path):
    pytest.importorskip("transformers")
    from transformers import AutoModelForCausalLM

    from rf_core.model.loading import fp32_folder
    from rf_core.testing import build_tiny_model

    src = build_tiny_model(tmp_path / "src")
    hf = tmp_path / "cache" / "hf"  # what rf-model fetch converts to: bf16
    AutoModelForCausalLM.from_pretrained(str(src), dtype=torch.float32).to(
        torch.bfloat16).save_pretrained(hf)
    for f in src.iterdir():
        if f.is_file() and not f.name.startswith(("model", "config")):
            (hf / f.name).write_bytes(f.read_bytes())
    said: list[str] = []
    out = fp32_folder(hf, said.append)
    assert out == tmp_path / "cache" / "hf-fp32" and len(said) == 1
    assert (out / "tokenizer_config.json").read_bytes() == (hf / "tokenizer_config.json").read_bytes()
    want = AutoModelForCausalLM.from_pretrained(str(hf), dtype=torch.float32).state_dict()
    got = AutoModelForCausalLM.from_pretrained(str(out), dtype=torch.float32).state_dict()
    assert want.keys() == got.keys()
    assert all(torch.equal(want[k], got[k]) for k in want)
    stamp = (out / "config.json").stat().st_mtime_ns
    assert fp32_folder(hf, said.append) == out and len(said) == 1  # written once
    assert (out / "config.json").stat().st_mtime_ns == stamp


def test_an_fp32_copy_another_process_finished_first_stays(tmp_path, monkeypatch):
    pytest.importorskip("transformers")
    import shutil

    from rf_core.model import loading
    from rf_core.testing import build_tiny_model

    hf = build_tiny_model(tmp_path / "cache" / "hf")
    target = tmp_path / "cache" / "hf-fp32"
    copy = shutil.copy2

    def racing_copy(src, dst):  # while this process copies, another one finishes
        if not target.exists():
            target.mkdir()
            (target / "config.json").write_text("{}")
        return copy(src, dst)

    monkeypatch.setattr(loading.shutil, "copy2", racing_copy)
    assert loading.fp32_folder(hf, lambda _: None) == target
    assert (target / "config.json").read_text() == "{}"  # the other process's, kept
    assert [p.name for p in target.parent.iterdir() if p.name.startswith(".")] == []
