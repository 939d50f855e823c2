"""The default sampler: transformers models (with a peft adapter) and rf_core's batched engine."""

from __future__ import annotations

import time
from itertools import islice
from typing import Callable, Iterable, Iterator

from rf_core.api import DEVICE_PATTERN, Option, check_device, hookimpl, to_stderr

# within a batch, a line at most this often (a first batch may take many minutes on a CPU)
PROGRESS_EVERY_S = 30.0


def rate(tokens: int, seconds: float) -> str:
    """``12.3 tok/s``, with three significant digits (0.19, not 0, on a slow machine); "no
    tokens yet" rather than a rate of 0 that was never measured."""
    if tokens <= 0 or seconds <= 0:
        return "no tokens yet"
    r = tokens / seconds
    return f"{r:.0f} tok/s" if r >= 100 else f"{r:.3g} tok/s"



class HFSampler:
    name = "hf"
    description = "transformers + peft, prefill once per prompt, finished rows dropped"
    options = (
        Option("device", str, "auto", "auto, cpu, cuda, cuda:1 ...", pattern=DEVICE_PATTERN),
        Option("dtype", str, "auto", "Weights' dtype; auto: bf16 on a GPU, fp32 on a CPU.",
               choices=("auto", "bf16", "fp16", "fp32")),
        Option("batch_tokens", int, None, "KV-cache tokens per batch (default: from free GPU "
               "memory; 16384 on CPU).", minimum=64),
        Option("max_batch_prompts", int, 256, "Prompts per batch at most.", minimum=1),
        Option("window", int, 1024, "Tasks read ahead and planned into batches together.",
               minimum=1),
    )

    def sample(self, tasks: Iterable[dict], *, model: str, adapter: str | None = None,
               k: int = 1, temperature: float = 0.0, top_p: float = 1.0,
               max_new_tokens: int = 256, seed: int = 0, device: str = "auto",
               dtype: str = "auto", batch_tokens: int | None = None, max_batch_prompts: int = 256,
               window: int = 1024, report: Callable[[str], None] = to_stderr,
               **_ignored) -> Iterator[dict]:
        import torch

        from rf_core.api import (attach, decode_answers, encode_prompt, end_of_turn_ids,
                                 load_for_sampling, task_messages)
        from rf_plugins.hf.engine import (SamplingConfig, Stats, plan_batches, sample_batch,
                                          token_budget, window_for)

        check_device(device)  # a missing GPU said before the model loads
        report(f"hf: loading {model}" + (f" with adapter {adapter}" if adapter else "")
               + f" (device {device}, dtype {dtype})")
        loading = time.perf_counter()
        tok, mdl, dev = load_for_sampling(model, adapter=adapter, device=device, dtype=dtype,
                                          report=report)
        report(f"hf: model loaded in {time.perf_counter() - loading:.1f} s on {dev}")
        stops = end_of_turn_ids(tok)
        pad = tok.pad_token_id if tok.pad_token_id is not None else stops[0]
        cfg = SamplingConfig(k=k, temperature=temperature, top_p=top_p,
                             max_new_tokens=max_new_tokens, seed=seed, stop_ids=tuple(stops),
                             pad_id=pad)
        budget = batch_tokens or token_budget(mdl, dev, max_new_tokens)
        gen = torch.Generator(device=dev).manual_seed(seed)
        stats = Stats()
        start = time.perf_counter()
        it = iter(tasks)
        done = 0
        while chunk := list(islice(it, window_for(window, k))):
            messages = [task_messages(t) for t in chunk]
            prompts = [encode_prompt(tok, m) for m in messages]
            results: list = [None] * len(chunk)
            batches = plan_batches(prompts, k, max_new_tokens, budget, max_batch_prompts)
            for b, batch in enumerate(batches, start=1):
                where = f"batch {b}/{len(batches)}"
                report(f"{where}: sampling {len(batch)} prompt(s) x {k}, up to "
                       f"{max_new_tokens} new tokens each")
                shown = time.perf_counter()

                def on_step(step, finished, rows, where=where):
                    nonlocal shown
                    if time.perf_counter() - shown >= PROGRESS_EVERY_S:
                        shown = time.perf_counter()
                        report(f"{where}: step {step} of at most {max_new_tokens}, "
                               f"{finished} of {rows} sequence(s) finished")

                out = sample_batch(mdl, [prompts[i] for i in batch], cfg, gen, stats, budget,
                                   on_step)
                for i, samples in zip(batch, out):
                    results[i] = samples
                if len(batches) > 1:
                    elapsed = time.perf_counter() - start
                    report(f"{where}: done, {stats.sequences} candidate(s) so far, "
                           f"{rate(stats.new_tokens, elapsed)}")
            for task, msgs, samples in zip(chunk, messages, results):
                # seed None: every candidate of a batch comes from one random stream, so no
                # seed reproduces one candidate (--seed reproduces the whole run)
                yield attach(task, msgs, decode_answers(tok, samples), sampler=self.name,
                             model=model, adapter=adapter, temperature=temperature, seed=None)
            done += len(chunk)
            elapsed = time.perf_counter() - start
            report(f"{done} task(s), {stats.sequences} candidate(s), {stats.new_tokens} new "
                   f"tokens in {elapsed:.1f} s ({rate(stats.new_tokens, elapsed)}; "
                   f"{stats.new_tokens / max(stats.row_steps, 1):.0%} of decoded rows "
                   f"were live; {stats.prefill_tokens:,} of {stats.prompt_tokens:,} prompt "
                   "tokens prefilled)")


@hookimpl
def register_samplers(register):
    from rf_plugins.hf.continuous import CBSampler

    register(HFSampler())
    register(CBSampler())
