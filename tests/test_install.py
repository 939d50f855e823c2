"""The models extra accepts the torch and transformers a GPU image brings (no pin to replace
them), and the Makefile keeps a torch that is already there."""

from __future__ import annotations

import tomllib

from packaging.requirements import Requirement

from conftest import ROOT


def _extra(name: str) -> dict[str, Requirement]:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    reqs = map(Requirement, project["optional-dependencies"][name])
    return {r.name: r for r in reqs}


def test_models_extra_takes_the_gpu_image_versions_and_the_cpu_wheel():
    models = _extra("models")
    for version in ("2.11.0", "2.13.0", "2.14.1"):
        assert models["torch"].specifier.contains(version), version
    for version in ("5.17.0", "5.24.0"):
        assert models["transformers"].specifier.contains(version), version
    # the GPU image has no gguf and no network: reading GGUF files is an extra of its own
    assert "gguf" not in models and "gguf" in _extra("gguf")


def test_makefile_installs_torch_only_where_there_is_none():
    make = (ROOT / "Makefile").read_text()
    assert "python -c 'import torch' 2>/dev/null || $(BIN)/pip install --quiet torch==2.13.0" \
        in make
    assert "--system-site-packages" in make
