"""The default sampler: transformers models (with a peft adapter) and rf_core's batched engine.

An engine in the ``rf_core.api.SamplerEngine`` sense: it generates k answers for a window of
conversations; rf-sample reads the tasks, renders the prompts, writes the candidates and the
rate line.
"""

from __future__ import annotations

import time
from dataclasses import replace
from typing import Callable

from rf_core.api import (DEVICE_PATTERN, BadOption, Option, SampleRequest, check_device,
                         hookimpl, to_stderr)

# within a batch, a line at most this often (a first batch may take many minutes on a CPU)
PROGRESS_EVERY_S = 30.0


class HFSampler:
    """transformers + peft with rf_core's batched sampling (rf_plugins/hf/engine.py)."""

    name = "hf"
    description = "transformers + peft, prefill once per prompt, finished rows dropped"
    priority = 10  # --sampler auto's last resort: it runs wherever torch does
    rule = ""
    options = (
        Option("device", str, "auto", "auto, cpu, cuda, cuda:1 ...", pattern=DEVICE_PATTERN),
        Option("dtype", str, "auto", "Weights' dtype; auto: bf16 on a GPU, fp32 on a CPU.",
               choices=("auto", "bf16", "fp16", "fp32")),
        Option("batch_tokens", int, None, "KV-cache tokens per batch (default: from free GPU "
               "memory; 16384 on CPU).", minimum=64),
        Option("max_batch_prompts", int, 256, "Prompts per batch at most.", minimum=1),
        Option("window", int, 1024, "Tasks read ahead and planned into batches together.",
               minimum=1),
        Option("batch_invariant", bool, False, "One task per batch, with a random stream of "
               "its own (from --seed and its input position): a task's candidates do not "
               "depend on the other tasks, so --shard outputs merge byte-identical to the "
               "unsharded run. Slower on a GPU."),
        Option("quantize", str, "none", "int8: the linear layers' weights as int8, "
               "activations quantized on the fly (torch's dynamic quantization), on a CPU "
               "only: about 2x faster prefill and decoding there, but other numerics and "
               "lower EX (the README measures both).",
               choices=("none", "int8")),
        Option("kernels", str, "auto", "Linear layers on a CPU. auto: oneDNN's fp32 kernels "
               "on weights packed once at load (about 3x faster decoding than torch's "
               "default there; the same precision, other rounding in the last bits); "
               "torch: torch's default kernels.", choices=("auto", "torch")),
    )

    def available(self) -> tuple[bool, str]:
        """Always: on a CPU as on a GPU."""
        return True, ""

    def load(self, request: SampleRequest, *, report: Callable[[str], None] = to_stderr,
             device: str = "auto", dtype: str = "auto", batch_tokens: int | None = None,
             max_batch_prompts: int = 256, window: int = 1024, batch_invariant: bool = False,
             quantize: str = "none", kernels: str = "auto", **_ignored) -> "_HFRun":
        """Load the model (and adapter) for sampling."""
        from rf_core.api import end_of_turn_ids, load_for_sampling

        from rf_plugins.hf.engine import SamplingConfig, token_budget, window_for

        check_device(device)  # a missing GPU said before the model loads
        model, adapter = request.model, request.adapter
        report(f"hf: loading {model}" + (f" with adapter {adapter}" if adapter else "")
               + f" (device {device}, dtype {dtype})")
        loading = time.perf_counter()
        tok, mdl, dev = load_for_sampling(model, adapter=adapter, device=device, dtype=dtype,
                                          report=report)
        report(f"hf: model loaded in {time.perf_counter() - loading:.1f} s on {dev}")
        if quantize == "int8":
            mdl = quantized_int8(mdl, dev, report)
        elif kernels == "auto" and dev.type == "cpu":
            packed_kernels(mdl, report)
        stops = end_of_turn_ids(tok)
        pad = tok.pad_token_id if tok.pad_token_id is not None else stops[0]
        cfg = SamplingConfig(k=request.k, temperature=request.temperature, top_p=request.top_p,
                             max_new_tokens=request.max_new_tokens, seed=request.seed,
                             stop_ids=tuple(stops), pad_id=pad)
        budget = batch_tokens or token_budget(mdl, dev, request.max_new_tokens)
        run = _HFRun(tok, mdl, dev, cfg, budget, max_batch_prompts,
                     window_for(window, request.k), report)
        run.batch_invariant = batch_invariant
        return run


def packed_kernels(model, report: Callable[[str], None]) -> None:
    """The model's linear layers on oneDNN's packed fp32 kernels (rf_core.model.onednn), said
    in a line with the time packing took."""
    from rf_core.api import pack_linears

    began = time.perf_counter()
    model.requires_grad_(False)  # sampling takes no gradient
    n = pack_linears(model)
    if n:
        report(f"hf: {n} linear layers on oneDNN's packed fp32 kernels "
               f"({time.perf_counter() - began:.1f} s to pack)")


def quantized_int8(model, dev, report: Callable[[str], None]):
    """``model`` with every linear layer (the output layer too) replaced by its dynamically
    quantized int8 form: weights int8 per tensor, activations quantized per batch as they
    come (torch.ao's ``quantize_dynamic``, fbgemm or onednn kernels). CPU only; an adapter
    is already merged into the weights, so it is quantized with them."""
    import warnings

    import torch

    if dev.type != "cpu":
        raise BadOption(f"option 'quantize' of sampler 'hf': int8 runs on a CPU only, not on "
                        f"{dev}")
    began = time.perf_counter()
    with warnings.catch_warnings():  # torch.ao's eager quantization is deprecated for torchao
        warnings.simplefilter("ignore")
        from torch.ao.quantization import quantize_dynamic

        model = quantize_dynamic(model, {torch.nn.Linear}, dtype=torch.qint8)
    report(f"hf: linear layers quantized to int8 in {time.perf_counter() - began:.1f} s")
    return model


class _HFRun:
    """The loaded model, sampling windows of conversations batch by batch."""

    def __init__(self, tok, mdl, dev, cfg, budget: int, max_batch_prompts: int, window: int,
                 report: Callable[[str], None]):
        import torch

        from rf_plugins.hf.engine import Stats

        self.tok, self.mdl, self.cfg = tok, mdl, cfg
        self.budget, self.max_batch_prompts, self.window = budget, max_batch_prompts, window
        self.report = report
        self.dev = dev
        self.gen = torch.Generator(device=dev).manual_seed(cfg.seed)
        self.stats = Stats()
        self.batch_invariant = False

    def generate(self, conversations: list, *, first: int = 0,
                 positions: list[int] | None = None, **_context) -> list[list[dict]]:
        """k answers per conversation; every answer of a run comes from one random stream,
        so no seed reproduces one answer (their seed is None; --seed reproduces the run).
        With ``batch_invariant``, each task is a batch of its own and has its own stream."""
        from rf_core.api import decode_answers, encode_prompt

        from rf_core.api import phase_text

        from rf_plugins.hf.engine import plan_batches

        prompts = [encode_prompt(self.tok, m) for m in conversations]
        if self.batch_invariant:
            places = positions or range(first, first + len(prompts))
            return [decode_answers(self.tok, self._alone(p, place))
                    for p, place in zip(prompts, places)]
        results: list = [None] * len(prompts)
        cfg = self.cfg
        batches = plan_batches(prompts, cfg.k, cfg.max_new_tokens, self.budget,
                               self.max_batch_prompts)
        for b, batch in enumerate(batches, start=1):
            where = f"batch {b}/{len(batches)}"
            self.report(f"{where}: sampling {len(batch)} prompt(s) x {cfg.k}, up to "
                        f"{cfg.max_new_tokens} new tokens each")
            before = replace(self.stats)
            out = self._batch([prompts[i] for i in batch], where)
            for i, samples in zip(batch, out):
                results[i] = samples
            if len(batches) > 1:
                self.report(f"{where}: done, {self.stats.sequences} candidate(s) so far ("
                            f"{phase_text(self.stats.phases(), before.phases())})")
        return [decode_answers(self.tok, samples) for samples in results]

    def too_long(self, conversations: list) -> list[str | None]:
        """Why each conversation does not fit the model's context (None: it fits)."""
        from rf_core.api import context_length, over_context

        return over_context(self.tok, conversations, context=context_length(self.mdl),
                            max_new_tokens=self.cfg.max_new_tokens)

    def _alone(self, prompt: list[int], position: int) -> list:
        """One task's k samples as a batch of their own (no other prompt's padding in its
        forward passes), from a random stream seeded by --seed and the task's position."""
        import torch

        from rf_core.api import sample_seed

        self.gen = torch.Generator(device=self.dev).manual_seed(
            sample_seed(self.cfg.seed, position, 0))
        return self._batch([prompt], f"task {position + 1}")[0]

    def _batch(self, prompts: list[list[int]], where: str) -> list:
        """One batch, with a progress line at most every PROGRESS_EVERY_S seconds."""
        from rf_plugins.hf import engine

        shown = time.perf_counter()

        def on_step(step, finished, rows):
            nonlocal shown
            if time.perf_counter() - shown >= PROGRESS_EVERY_S:
                shown = time.perf_counter()
                self.report(f"{where}: step {step} of at most {self.cfg.max_new_tokens}, "
                            f"{finished} of {rows} sequence(s) finished")

        return engine.sample_batch(self.mdl, prompts, self.cfg, self.gen, self.stats,
                                   self.budget, on_step)

    def phases(self) -> dict:
        """Prefill and decode seconds and tokens so far (rf-sample's summary and --stats)."""
        return self.stats.phases()

    def detail(self) -> str:
        """How much of the decoding was live and of the prompts prefilled."""
        s = self.stats
        return (f"{s.new_tokens / max(s.row_steps, 1):.0%} of decoded rows were live; "
                f"{s.prefill_tokens:,} of {s.prompt_tokens:,} prompt tokens prefilled")


@hookimpl
def register_samplers(register):
    """hf and cb."""
    from rf_plugins.hf.continuous import CBSampler

    register(HFSampler())
    register(CBSampler())
