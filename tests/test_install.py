"""`make install` on a machine as it is: the models extra accepts the torch and transformers a
GPU image brings, the CPU path installs torch 2.13.0 where there is none, and where the python
that runs make is a venv's python holding torch (the GPU image), the project's venv shares that
torch and installs offline from a wheels folder. bench/gpu_pack.sh's bad input."""

from __future__ import annotations

import importlib.metadata
import json
import os
import socket
import subprocess
import sys
import sysconfig
import tomllib
from pathlib import Path

import pytest
from packaging.requirements import Requirement

from conftest import ROOT


def _project() -> dict:
    return tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]


def _extra(name: str) -> dict[str, Requirement]:
    reqs = map(Requirement, _project()["optional-dependencies"][name])
    return {r.name: r for r in reqs}


def _installed(req: Requirement) -> bool:
    try:
        return req.specifier.contains(importlib.metadata.version(req.name), prereleases=True)
    except importlib.metadata.PackageNotFoundError:
        return False


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _offline_env() -> dict[str, str]:
    """This environment with pip unable to reach any index or any configured source, and no
    outer make's variables (`make test` runs the suite) to override the test's."""
    env = {k: v for k, v in os.environ.items()
           if not k.startswith("PIP_") and k not in ("MAKEFLAGS", "MFLAGS", "MAKELEVEL",
                                                       "PYTHONPATH", "VIRTUAL_ENV")}
    env.update(PIP_CONFIG_FILE=os.devnull, PIP_NO_INDEX="1",
               PIP_INDEX_URL=f"http://127.0.0.1:{_closed_port()}/simple",
               PIP_DISABLE_PIP_VERSION_CHECK="1")
    return env


def _make(*args: str, env=None, timeout=300) -> subprocess.CompletedProcess:
    return subprocess.run(["make", "--no-print-directory", *args], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=timeout)


def _untracked() -> set[str]:
    out = subprocess.run(["git", "ls-files", "--others", "--exclude-standard"], cwd=ROOT,
                         capture_output=True, text=True, check=True).stdout
    return set(out.splitlines())


def test_models_extra_takes_the_gpu_image_versions_and_the_cpu_wheel():
    models = _extra("models")
    for version in ("2.11.0", "2.13.0", "2.14.1"):
        assert models["torch"].specifier.contains(version), version
    for version in ("5.17.0", "5.24.0"):
        assert models["transformers"].specifier.contains(version), version
    # the GPU image has no gguf and no network: reading GGUF files is an extra of its own
    assert "gguf" not in models and "gguf" in _extra("gguf")


def test_cpu_path_makes_a_plain_venv_and_installs_torch_2_13():
    """Where PYTHON has no torch (CI's fresh machine), the commands are those of before."""
    base = getattr(sys, "_base_executable", None)
    if not base or subprocess.run([base, "-c", "import torch"],
                                  capture_output=True).returncode == 0:
        pytest.skip("needs a python without torch (this venv's base interpreter has one)")
    proc = _make("-n", "install", f"PYTHON={base}", "VENV=/nonexistent/venv", "EXTRAS=models,test",
                 env=_offline_env())
    assert proc.returncode == 0, proc.stderr
    bin_ = "/nonexistent/venv/bin"
    assert proc.stdout.splitlines()[:3] == [
        f"test -x {bin_}/python || {base} -m venv /nonexistent/venv",
        f"{bin_}/python -c 'import torch' 2>/dev/null || {bin_}/pip install --quiet torch==2.13.0",
        f"{bin_}/pip install --quiet  -e '.[models,test]' ./examples/reasonforge-canonical",
    ]
    assert "_reasonforge_parent_site.pth" not in proc.stdout


def test_install_shares_the_parent_torch_offline(tmp_path):
    """This test's python (a venv holding torch) plays the GPU image's python: `make install`
    from it, with no index reachable, gives a venv that imports the project and the parent's
    torch, and installs nothing but the project and the example plugin, since the parent holds
    every requirement of the extras chosen (the wheels folder stays empty)."""
    models = _extra("models")
    missing = [str(r) for r in [*models.values(), *_extra("test").values()] if not _installed(r)]
    if missing:
        pytest.skip(f"this environment lacks {', '.join(missing)}")
    extras = "models,test" + (",gguf" if all(map(_installed, _extra("gguf").values())) else "")
    venv, wheels = tmp_path / "venv", tmp_path / "wheels"
    wheels.mkdir()
    env = _offline_env()
    before = _untracked()

    proc = _make("install", f"PYTHON={sys.executable}", f"VENV={venv}", f"EXTRAS={extras}",
                 f"PIP_ARGS=--no-index --find-links {wheels}", env=env)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert "make install: torch" in proc.stdout

    py = venv / "bin" / "python"
    probe = ("import json, torch, rf_core, reasonforge_canonical, transformers, peft; "
             "print(json.dumps({'torch': torch.__file__, 'rf_core': rf_core.__file__}))")
    where = json.loads(subprocess.run([py, "-c", probe], env=env, capture_output=True,
                                      text=True, check=True).stdout)
    parent_site = Path(sysconfig.get_paths()["purelib"]).resolve()
    assert Path(where["torch"]).resolve().is_relative_to(parent_site)
    assert Path(where["rf_core"]).resolve().is_relative_to(ROOT)  # editable: the checkout

    own_site = Path(subprocess.run([py, "-c", "import sysconfig; print(sysconfig.get_path('purelib'))"],
                                   capture_output=True, text=True, check=True).stdout.strip())
    dists = sorted(p.name.split("-")[0] for p in own_site.glob("*.dist-info"))
    assert dists == ["reasonforge", "reasonforge_canonical"]  # torch and the rest not again
    for script in _project()["scripts"]:
        assert os.access(venv / "bin" / script, os.X_OK), script
    listed = subprocess.run([venv / "bin" / "rf-plugins"], env=env, capture_output=True,
                            text=True)
    assert listed.returncode == 0, listed.stderr
    assert "canonical" in listed.stdout

    # the venv's own python as PYTHON (a rerun from inside it) keeps the link to the parent
    pth = own_site / "_reasonforge_parent_site.pth"
    link = pth.read_text()
    (venv / ".installed").unlink()
    proc = _make("install", f"PYTHON={py}", f"VENV={venv}", f"EXTRAS={extras}",
                 f"PIP_ARGS=--no-index --find-links {wheels}", env=env)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert pth.read_text() == link and str(parent_site) in link

    # an editable install writes only ignored files in the checkout (*.egg-info, build/)
    new = [p for p in _untracked() - before
           if p.startswith(("examples/", "build/")) or ".egg-info" in p or p.endswith(".pth")]
    assert not new, new


def _pack(*args: str, **kw) -> subprocess.CompletedProcess:
    return subprocess.run(["bash", str(ROOT / "bench" / "gpu_pack.sh"), *args], cwd=ROOT,
                          capture_output=True, text=True, timeout=60, **kw)


def test_gpu_pack_help_and_bad_input(tmp_path):
    proc = _pack("-h")
    assert proc.returncode == 0 and "--spider-root" in proc.stdout
    proc = _pack("--bogus")
    assert proc.returncode == 2 and "unknown option '--bogus'" in proc.stderr
    proc = _pack("--out", str(tmp_path / "c"), "--spider-root", str(tmp_path / "nothing"))
    assert proc.returncode == 2
    first = proc.stderr.splitlines()[0]
    assert first.startswith("gpu_pack.sh: Spider 1.0 not found") and "RF_SPIDER_ROOT" in first
    assert "Traceback" not in proc.stderr
    assert not (tmp_path / "c").exists()  # nothing written before the input is checked
    proc = _pack("--out", str(tmp_path / "c"), "--model", "no-such-model")
    assert proc.returncode == 2 and "unknown model 'no-such-model'" in proc.stderr
