"""The cb sampler: transformers' continuous batching (a paged KV cache, requests joining and
leaving the running batch at every step) behind rf-sample.

transformers schedules the requests itself: each prompt is prefilled once and forked into its
k samples (``num_return_sequences``; children ``req_N__child#j``), full cache blocks shared
between prompts are reused (prefix sharing), finished requests leave the batch at once. It
runs on a CUDA GPU and on a CPU. What it takes from ReasonForge is what the hf sampler takes:
the prompt token ids (``encode_prompt``), the chat template's end-of-turn ids as stop tokens,
k, temperature and top-p. A LoRA adapter is merged into the weights in memory for sampling
(the adapter folder is only read).

Differences from the hf sampler, all from the library:
- seeds: transformers seeds one random stream per engine run (``torch.manual_seed``, the
  process's global generator), not one per request. All requests of a window are queued before
  the engine starts, so the batches it forms, and so the candidates, are the same for the same
  seed and inputs; a task's candidates depend on the other tasks of its window (as with the hf
  sampler's batches), so no seed reproduces one candidate, and candidates record seed null.
- k greedy candidates (temperature 0): transformers refuses greedy forks, so one answer is
  generated and copied k times (they would be identical anyway).
- logprob: transformers returns the log-probabilities of the distribution it sampled from,
  after temperature and top-p; at temperature 0 (and at 1 without top-p) that is the model's
  own, as the hf sampler reports it.

API used, the same in transformers 5.17 and 5.24: ``model.init_continuous_batching(
generation_config, continuous_batching_config, workload_hints)``, then the manager's
``add_requests``, ``warmup``, ``start``, ``get_result``, ``stop``, ``destroy``. 5.17 calls
the cache's tokens per block ``block_size`` and switches attention to ``paged|sdpa``; 5.24
calls it ``page_size`` and runs plain ``sdpa`` (or flash attention where installed).
"""

from __future__ import annotations

import contextlib
import logging
import os
import time
from dataclasses import dataclass, field, fields
from typing import Callable

from rf_core.api import (DEVICE_PATTERN, Generation, Option, RFError, SampleRequest,
                         check_device, flash_attention, to_stderr)

# On a CPU transformers would size the cache from the machine's RAM (60-90% of it); these
# budgets keep it to what a few dozen concurrent rows need.
CPU_CACHE_TOKENS = 16_384
CPU_BATCH_TOKENS = 1024


@dataclass
class RunStats:
    """What the engine runs did, for the rate line's detail and the benchmarks."""

    prompts: int = 0
    sequences: int = 0
    new_tokens: int = 0         # generated tokens, stop tokens included (as the hf engine counts)
    prompt_tokens: int = 0
    seconds: float = 0.0
    start_seconds: float = 0.0  # building the paged cache (warmup), included in seconds
    engine: dict = field(default_factory=dict)  # num_blocks, max_batch_tokens, ... as resolved


def available() -> str | None:
    """None when this transformers has the continuous batching API used here, else why not."""
    try:
        import transformers
        from transformers.generation.configuration_utils import (  # noqa: F401
            ContinuousBatchingConfig)
        from transformers.generation.continuous_batching import ContinuousBatchingManager
    except ImportError as exc:
        return f"no continuous batching in this transformers ({exc})"
    if not hasattr(ContinuousBatchingManager, "add_requests"):
        return f"transformers {transformers.__version__} has an older continuous batching API"
    return None


class _ErrorsAreOurs(logging.Filter):
    """The engine logs a failed request or loop with a traceback, then hands the error to us;
    rf-sample reports it in one line (RF_DEBUG=1 keeps the engine's own log)."""

    def filter(self, record: logging.LogRecord) -> bool:
        """Keep the engine's records below ERROR."""
        return record.levelno < logging.ERROR


@contextlib.contextmanager
def _quiet_engine_errors():
    if os.environ.get("RF_DEBUG") == "1":
        yield
        return
    log = logging.getLogger("ContinuousBatchingLogger")  # transformers 5.17 and 5.24
    quiet = _ErrorsAreOurs()
    log.addFilter(quiet)
    try:
        yield
    finally:
        log.removeFilter(quiet)


def _failure(message: str) -> str:
    if "No requests can be scheduled" in message:
        return (f"{message} (the KV cache cannot hold one prompt and its answer: raise "
                "-o num_blocks or -o block_size)")
    return message


def _cb_config(device, *, seed: int, max_batch_tokens: int | None, num_blocks: int | None,
               block_size: int | None, memory_fraction: float | None):
    from transformers.generation.configuration_utils import ContinuousBatchingConfig

    names = {f.name for f in fields(ContinuousBatchingConfig)}
    size_field = "page_size" if "page_size" in names else "block_size"  # 5.24 / 5.17
    kwargs = {"return_logprobs": True, "seed": seed, "max_batch_tokens": max_batch_tokens,
              "num_blocks": num_blocks, "max_memory_percent": memory_fraction}
    if block_size is not None:
        kwargs[size_field] = block_size
    if device.type != "cuda":
        per_block = block_size or getattr(ContinuousBatchingConfig, size_field)
        kwargs["max_batch_tokens"] = max_batch_tokens or CPU_BATCH_TOKENS
        kwargs["num_blocks"] = num_blocks or -(-CPU_CACHE_TOKENS // per_block)
    return ContinuousBatchingConfig(**kwargs)


def _configs(model, prompts: list[list[int]], *, forks: int, temperature: float,
             top_p: float, max_new_tokens: int, stop_ids: list[int], seed: int,
             max_batch_tokens: int | None, num_blocks: int | None, block_size: int | None,
             memory_fraction: float | None) -> dict:
    """The keyword arguments of ``init_continuous_batching`` for one engine run."""
    from transformers import GenerationConfig

    try:
        from transformers.generation.continuous_batching.utils import WorkloadHints
    except ImportError:  # only hints: the engine picks its defaults without them
        WorkloadHints = None

    greedy = temperature <= 0
    sampling = {} if greedy else {"temperature": temperature, "top_p": top_p, "top_k": 0}
    gen_config = GenerationConfig(max_new_tokens=max_new_tokens, do_sample=not greedy,
                                  num_return_sequences=forks, eos_token_id=list(stop_ids),
                                  **sampling)
    cb_config = _cb_config(model.device, seed=seed, max_batch_tokens=max_batch_tokens,
                           num_blocks=num_blocks, block_size=block_size,
                           memory_fraction=memory_fraction)
    hints = None if WorkloadHints is None else WorkloadHints(
        max_prompt_length=max(map(len, prompts)), max_generated_length=max_new_tokens,
        num_requests=len(prompts) * forks)
    return {"generation_config": gen_config, "continuous_batching_config": cb_config,
            "workload_hints": hints}


def _receive(manager, total: int) -> dict:
    """Every finished request's output by request id, until ``total`` have come."""
    results: dict = {}
    while len(results) < total:
        out = manager.get_result(timeout=1)
        if out is None:
            if not manager.is_running():
                why = manager.background_thread_status.fatal_error
                raise RFError(f"cb: the generation loop stopped with {len(results)} of "
                              f"{total} candidates done: "
                              f"{_failure(str(why)) if why else 'no error given'}")
            continue
        if out.is_finished():
            if out.error is not None:
                raise RFError(f"cb: request {out.request_id} failed: {_failure(out.error)}")
            results[out.request_id] = out
    return results


def _run(manager, prompts: list[list[int]], forks: int, max_new_tokens: int,
         stats: RunStats | None) -> tuple[list, dict, dict]:
    """One engine run: (request ids, each id's forks' ids, outputs by id)."""
    complete = False
    try:
        began = time.perf_counter()
        manager.warmup()  # builds the cache (and captures CUDA graphs where used)
        if stats is not None:
            stats.start_seconds += time.perf_counter() - began
        # queued before the loop starts, so its first step sees all of them
        ids = manager.add_requests(inputs=prompts, max_new_tokens=max_new_tokens)
        wanted = {rid: [rid] + [f"{rid}__child#{j}" for j in range(forks - 1)] for rid in ids}
        manager.start()
        results = _receive(manager, len(ids) * forks)
        complete = True
    finally:
        # a hard stop when interrupted: the engine's thread must not outlive the command
        manager.stop(block=True, timeout=None if complete else 30, hard_stop=not complete)
        manager.destroy()
        if stats is not None:
            resolved = manager.continuous_batching_config
            stats.engine = {name: getattr(resolved, name, None) for name in (
                "num_blocks", "max_batch_tokens", "max_requests_per_batch", "page_size",
                "block_size", "max_memory_percent")}
    return ids, wanted, results


def generate(model, prompts: list[list[int]], *, k: int, temperature: float, top_p: float,
             max_new_tokens: int, stop_ids: list[int], seed: int,
             max_batch_tokens: int | None = None, num_blocks: int | None = None,
             block_size: int | None = None, memory_fraction: float | None = None,
             stats: RunStats | None = None) -> list[list[Generation]]:
    """k candidates for each prompt (token id lists), grouped by prompt, in order: one engine
    run; every request is queued before it starts, so the same seed gives the same batches."""
    import torch

    if not prompts:
        return []
    # greedy answers are all alike, and transformers refuses k greedy forks: one, copied k times
    forks = 1 if temperature <= 0 else k
    configs = _configs(model, prompts, forks=forks, temperature=temperature, top_p=top_p,
                       max_new_tokens=max_new_tokens, stop_ids=stop_ids, seed=seed,
                       max_batch_tokens=max_batch_tokens, num_blocks=num_blocks,
                       block_size=block_size, memory_fraction=memory_fraction)
    start = time.perf_counter()
    # no_grad, not inference_mode: transformers 5.17 runs its loop outside inference mode, on a
    # cache built here, and inference tensors refuse the loop's in-place updates
    with torch.no_grad(), _quiet_engine_errors():
        manager = model.init_continuous_batching(**configs)
        ids, wanted, results = _run(manager, prompts, forks, max_new_tokens, stats)
    stops = set(stop_ids)
    grouped = [[Generation.from_ids(results[name].generated_tokens,
                                    float(sum(results[name].logprobs or [0.0])), stops)
                for name in wanted[rid]] * (k // forks) for rid in ids]
    if stats is not None:
        stats.prompts += len(prompts)
        stats.sequences += len(prompts) * k
        stats.prompt_tokens += sum(map(len, prompts))
        stats.new_tokens += sum(len(c.tokens) + c.finished for row in grouped for c in row)
        stats.seconds += time.perf_counter() - start
    return grouped


class CBSampler:
    """transformers' continuous batching behind rf-sample."""

    name = "cb"
    priority = 20  # before hf, after vllm
    rule = "a CUDA GPU with flash attention"
    description = ("transformers continuous batching: paged KV cache, requests join and leave "
                   "the batch every step; LoRA merged for sampling")
    options = (
        Option("device", str, "auto", "auto, cpu, cuda, cuda:1 ...", pattern=DEVICE_PATTERN),
        Option("dtype", str, "auto", "Weights' dtype; auto: bf16 on a GPU, fp32 on a CPU.",
               choices=("auto", "bf16", "fp16", "fp32")),
        Option("max_batch_tokens", int, None, "Tokens per forward step (default: transformers' "
               f"choice on a GPU; {CPU_BATCH_TOKENS} on a CPU).", minimum=16),
        Option("num_blocks", int, None, "KV-cache blocks (default: from free GPU memory; "
               f"{CPU_CACHE_TOKENS} tokens' worth on a CPU).", minimum=1),
        Option("block_size", int, None, "Tokens per cache block (default: transformers', 256).",
               minimum=4),
        Option("memory_fraction", float, None, "Share of free GPU memory for the cache "
               "(default: transformers', 0.8-0.9).", minimum=0.01, maximum=1.0),
        Option("window", int, 1024, "Tasks read ahead and run as one engine run.", minimum=1),
    )

    def available(self) -> tuple[bool, str]:
        """For --sampler auto: on a CUDA GPU where transformers has continuous batching and
        finds a flash attention for it (without one, paged|sdpa is quadratic in the batch and
        the hf engine is the faster one). Named with --sampler, cb also runs on a CPU."""
        import torch

        if not torch.cuda.is_available():
            return False, "no CUDA GPU"
        why = available()
        if why is not None:
            return False, why
        flash = flash_attention()
        if flash is None:
            return False, ("no flash attention: continuous batching would run paged|sdpa, "
                           "quadratic in the batch")
        return True, f"continuous batching on paged|{flash}"

    def load(self, request: SampleRequest, *, report: Callable[[str], None] = to_stderr,
             device: str = "auto", dtype: str = "auto", window: int = 1024,
             **settings) -> "_CBRun":
        """Load the model, the adapter merged into its weights in memory (the adapter folder
        is only read); ``settings``: the engine's cache options."""
        from rf_core.api import end_of_turn_ids, load_for_sampling

        why = available()
        if why is not None:
            raise RFError(f"the cb sampler needs transformers' continuous batching: {why}")
        check_device(device)  # a missing GPU said before the model loads
        model, adapter = request.model, request.adapter
        report(f"cb: loading {model}" + (f" with adapter {adapter}" if adapter else "")
               + f" (device {device}, dtype {dtype})")
        loading = time.perf_counter()
        tok, mdl, _ = load_for_sampling(model, adapter=adapter, device=device, dtype=dtype,
                                        report=report)
        report(f"cb: model loaded in {time.perf_counter() - loading:.1f} s")
        cache = {key: settings.get(key) for key in CACHE_OPTIONS}
        return _CBRun(tok, mdl, request, end_of_turn_ids(tok), cache, window)


CACHE_OPTIONS = ("max_batch_tokens", "num_blocks", "block_size", "memory_fraction")


class _CBRun:
    """The loaded model: one engine run per window of conversations."""

    def __init__(self, tok, mdl, request: SampleRequest, stops: list[int], cache: dict,
                 window: int):
        self.tok, self.mdl, self.request, self.stops = tok, mdl, request, stops
        self.cache, self.window = cache, window
        self.stats = RunStats()

    def too_long(self, conversations: list) -> list[str | None]:
        """Why each conversation does not fit the model's context (None: it fits)."""
        from rf_core.api import context_length, over_context

        return over_context(self.tok, conversations, context=context_length(self.mdl),
                            max_new_tokens=self.request.max_new_tokens)

    def generate(self, conversations: list, *, first: int, **_context) -> list[list[dict]]:
        """k answers per conversation from one engine run; a window's answers share one
        random stream, so no seed reproduces one answer (their seed is None)."""
        from rf_core.api import decode_answers, encode_prompt, sample_seed

        r = self.request
        prompts = [encode_prompt(self.tok, m) for m in conversations]
        # one seed per window: the first is --seed itself
        run_seed = r.seed if first == 0 else sample_seed(r.seed, first, 0)
        out = generate(self.mdl, prompts, k=r.k, temperature=r.temperature, top_p=r.top_p,
                       max_new_tokens=r.max_new_tokens, stop_ids=self.stops, seed=run_seed,
                       stats=self.stats, **self.cache)
        return [decode_answers(self.tok, cands) for cands in out]

    def detail(self) -> str:
        """The paged cache's size as the engine resolved it."""
        return (f"cache {self.stats.engine.get('num_blocks')} blocks, "
                f"{self.stats.engine.get('max_batch_tokens')} tokens per step")
