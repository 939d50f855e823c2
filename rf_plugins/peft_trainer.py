"""The default trainer: a LoRA adapter on the base model with peft, in one or many processes.

One process, or many under ``torchrun`` / ``accelerate launch`` (DDP: gloo on CPU, NCCL on
GPU). Every process plans the same length-grouped optimizer steps; each takes its share of a
step's examples, and the loss is normalised by the step's total weighted completion tokens, so
a run on N processes takes the same steps, with the same gradients, as a run on one.
"""

from __future__ import annotations

import json
import os
import shutil
import time
from pathlib import Path
from typing import Callable

from rf_core.api import (DEVICE_PATTERN, BadOption, Option, RFError, check_device, hookimpl,
                         replace_dir, to_stderr, write_atomic)



class _CompletionLoss:
    """Builds the module whose forward returns sum(weight * NLL) over completion tokens.

    The output layer runs only on completion positions: prompts are most of the tokens, and
    the vocabulary projection of a 150k-token vocabulary is the costliest layer there.
    """

    @staticmethod
    def build(peft_model):
        from torch import nn

        class CompletionLoss(nn.Module):
            def __init__(self, model):
                super().__init__()
                self.model = model
                base = model.get_base_model()
                self.decoder = base.get_decoder()
                self.head = base.get_output_embeddings()

            def forward(self, input_ids, attention_mask, targets, weights):
                hidden = self.decoder(input_ids=input_ids, attention_mask=attention_mask,
                                      use_cache=False).last_hidden_state
                # position t predicts token t + 1; targets holds -100 where there is no loss
                h = hidden[:, :-1]
                tgt = targets[:, 1:]
                keep = tgt != -100
                logits = self.head(h[keep]).float()
                nll = nn.functional.cross_entropy(logits, tgt[keep], reduction="none")
                w = weights[:, None].expand_as(tgt)[keep]
                return (nll * w).sum()

        return CompletionLoss(peft_model)


def _collate(batch, pad_id: int, device):
    import torch

    width = max(len(e.input_ids) for e in batch)
    ids = torch.full((len(batch), width), pad_id, dtype=torch.long)
    mask = torch.zeros((len(batch), width), dtype=torch.long)
    targets = torch.full((len(batch), width), -100, dtype=torch.long)
    weights = torch.tensor([e.weight for e in batch], dtype=torch.float32)
    for i, e in enumerate(batch):
        n = len(e.input_ids)
        ids[i, :n] = torch.tensor(e.input_ids)
        mask[i, :n] = 1
        targets[i, e.n_prompt:n] = torch.tensor(e.input_ids[e.n_prompt:])
    return ids.to(device), mask.to(device), targets.to(device), weights.to(device)


def _all_finite(model) -> bool:
    import torch

    return all(torch.isfinite(p).all() for n, p in model.named_parameters() if "lora_" in n)


class PeftTrainer:
    name = "peft"
    description = "LoRA with peft; completion-only loss; length-grouped steps; DDP"
    options = (
        # a rank beyond any layer's width only costs memory: 4096 is wider than the models here
        Option("rank", int, 16, "LoRA rank.", minimum=1, maximum=4096),
        Option("alpha", float, 32.0, "LoRA alpha."),
        Option("dropout", float, 0.15, "LoRA dropout.", minimum=0, maximum=1),
        Option("target", str, "all-linear", "LoRA target modules (peft's target_modules)."),
        Option("warmup", float, 0.1, "Share of steps for linear warm-up before the cosine "
               "decay.", minimum=0, maximum=1),
        Option("weight_decay", float, 0.01, "AdamW weight decay.", minimum=0),
        Option("micro_batch_tokens", int, None, "Padded tokens per forward pass (default: "
               "sized from free GPU memory and the model's shapes; 4096 on CPU).", minimum=16),
        Option("grad_checkpointing", str, "auto", "Trade compute for memory. auto: on when "
               "too few tokens fit on the GPU without it; off on CPU.",
               choices=("auto", "on", "off")),
        Option("dtype", str, "auto", "auto: bf16 on GPU, fp32 on CPU.",
               choices=("auto", "bf16", "fp32")),
        Option("device", str, "auto", "auto, cpu, cuda, cuda:1 ...", pattern=DEVICE_PATTERN),
        Option("max_bad_steps", int, None, "Non-finite steps tolerated (skipped) before "
               "stopping (default: 10%).", minimum=0),
        Option("save_every", int, 50, "Checkpoint every N steps for --resume (0: never).",
               minimum=0),
        Option("merge", bool, False, "Also write the merged model to OUT/merged."),
        Option("max_grad_norm", float, 1.0, "Gradient clipping norm.", minimum=0),
    )

    def train(self, examples: list[dict], *, base: str, out: str, rank: int = 16,
              alpha: float = 32, dropout: float = 0.15, target: str = "all-linear",
              lr: float = 1e-4, epochs: int = 2, warmup: float = 0.1,
              weight_decay: float = 0.01, batch_size: int = 16,
              micro_batch_tokens: int | None = None, max_len: int = 2048, seed: int = 0,
              grad_checkpointing: str | bool = "auto", dtype: str = "auto",
              device: str = "auto",
              resume: bool = False, merge: bool = False, force: bool = False,
              max_grad_norm: float = 1.0, max_bad_steps: int | None = None,
              save_every: int = 50, max_too_long: float | None = None,
              report: Callable[[str], None] = to_stderr, progress=None,
              **_ignored) -> dict:
        import torch
        import torch.distributed as dist
        from peft import LoraConfig, get_peft_model, set_peft_model_state_dict
        from peft.utils import get_peft_model_state_dict

        from rf_core.api import (cosine_with_warmup, encode_examples, end_of_turn_id, halve,
                                 load_model as load, micro_batches, plan_steps)

        if device != "auto":
            check_device(device)  # a missing GPU said before the model loads
        world = int(os.environ.get("WORLD_SIZE", "1"))
        rank_id = int(os.environ.get("RANK", "0"))
        local = int(os.environ.get("LOCAL_RANK", "0"))
        cuda = torch.cuda.is_available() and device in ("auto", "cuda")
        dev = torch.device(f"cuda:{local}" if cuda else (device if device != "auto" else "cpu"))
        if world > 1 and not dist.is_initialized():
            dist.init_process_group("nccl" if cuda else "gloo")
        main_proc = rank_id == 0
        say = report if main_proc else (lambda m: None)

        out_dir = Path(out)
        partial = out_dir.with_name(out_dir.name + ".partial")
        if out_dir.exists() and not force:
            raise RFError(f"{out} exists; pass --force to replace it")
        if not resume and main_proc:
            shutil.rmtree(partial, ignore_errors=True)

        torch_dtype = {"auto": torch.bfloat16 if dev.type == "cuda" else torch.float32,
                       "bf16": torch.bfloat16, "fp32": torch.float32}[dtype]
        tok, model = load(base, dtype=torch_dtype, device=dev)
        eot = end_of_turn_id(tok)
        encoded, too_long = encode_examples(examples, tok, eot, max_len, say,
                                            max_too_long=max_too_long)
        if not encoded:
            raise RFError("no example fits --max-len; nothing to train on")
        if batch_size < world:
            raise RFError(f"--batch-size {batch_size} is smaller than the {world} processes")
        torch.manual_seed(seed)
        lora = LoraConfig(r=rank, lora_alpha=alpha, lora_dropout=dropout,
                          target_modules=target, task_type="CAUSAL_LM")
        peft_model = _with_adapter(model, lora, target, get_peft_model)
        budget, completion_budget, checkpointing, why = _size_micro_batches(
            peft_model, dev, torch_dtype, dropout, grad_checkpointing, micro_batch_tokens,
            max(len(e.input_ids) for e in encoded))
        say(f"micro-batches of at most {budget:,} padded tokens"
            + (f" and {completion_budget:,} completion tokens" if completion_budget else "")
            + f"; gradient checkpointing {'on' if checkpointing else 'off'} ({why})")
        if checkpointing:
            _enable_checkpointing(peft_model)
        peft_model.train()
        loss_module = _CompletionLoss.build(peft_model)
        if world > 1:
            loss_module = torch.nn.parallel.DistributedDataParallel(
                loss_module, device_ids=[local] if cuda else None)
        params = [p for p in peft_model.parameters() if p.requires_grad]
        optimizer = torch.optim.AdamW(params, lr=lr, weight_decay=weight_decay)
        steps = plan_steps(encoded, batch_size, epochs, seed)
        total = len(steps)
        warm = int(round(warmup * total))
        sched = torch.optim.lr_scheduler.LambdaLR(
            optimizer, lambda s: cosine_with_warmup(s, total, warm))
        limit = max_bad_steps if max_bad_steps is not None else max(3, total // 10)
        pad = tok.pad_token_id if tok.pad_token_id is not None else eot

        # largest_micro_batch: [padded tokens, rows] of the largest one run, for the report
        state = {"step": 0, "skipped": 0, "losses": [], "tokens": 0, "seconds": 0.0,
                 "oom_retries": 0, "largest_micro_batch": [0, 0]}
        ckpt = partial / "checkpoint"
        if resume and (ckpt / "state.json").is_file():
            state = {"oom_retries": 0, "largest_micro_batch": [0, 0],
                     **json.loads((ckpt / "state.json").read_text())}
            weights = torch.load(ckpt / "adapter.pt", map_location=dev)
            set_peft_model_state_dict(peft_model, weights)
            optimizer.load_state_dict(torch.load(ckpt / "optimizer.pt", map_location=dev))
            sched.load_state_dict(torch.load(ckpt / "scheduler.pt"))
            torch.set_rng_state(torch.load(ckpt / "rng.pt"))
            say(f"resuming at step {state['step']} of {total}")

        say(f"training {len(encoded)} examples ({sum(too_long.values())} too long), "
            f"{total} steps, {world} process(es), {dev}, {torch_dtype}")
        start = time.perf_counter() - state["seconds"]
        if progress is not None and main_proc:
            progress.start(total, "step")
            progress.update(state["step"])
        for index in range(state["step"], total):
            step = steps[index]
            mine = step[rank_id::world]
            denom = sum(e.weight * e.n_completion for e in step)
            dummy = not mine  # a short last step: take part with zero weight
            mbs = micro_batches(mine or step[:1], budget, completion_budget)
            while True:
                try:
                    loss_sum = self._accumulate(loss_module, mbs, pad, dev, denom, world,
                                                dummy)
                    break
                except torch.cuda.OutOfMemoryError:
                    pass  # handled below: the traceback holds the activations until here
                # free this attempt's gradients and activations before trying again
                optimizer.zero_grad(set_to_none=True)
                if dev.type == "cuda":
                    torch.cuda.empty_cache()
                if world > 1:
                    raise RFError(f"step {index + 1}: CUDA out of memory in a distributed "
                                  f"run; pass a smaller -o micro_batch_tokens than {budget}")
                state["oom_retries"] += 1
                smaller = halve(mbs)
                if smaller is not None:
                    say(f"step {index + 1}: CUDA out of memory in {len(mbs)} micro-batch(es); "
                        f"retrying it in {len(smaller)} ({state['oom_retries']} retries so "
                        "far)")
                    mbs = smaller
                elif not checkpointing:
                    say(f"step {index + 1}: CUDA out of memory with one example per "
                        "micro-batch; retrying it with gradient checkpointing on")
                    _enable_checkpointing(peft_model)
                    checkpointing = True
                else:
                    raise RFError(f"step {index + 1}: CUDA out of memory with one example per "
                                  "micro-batch and gradient checkpointing on; lower --max-len")
            if not dummy:  # counted on the host: no device sync
                state["tokens"] += sum(len(e.input_ids) for mb in mbs for e in mb)
            # the micro-batches that ran, after any out-of-memory halving
            state["largest_micro_batch"] = max(state["largest_micro_batch"],
                                               *(_padded_size(mb) for mb in mbs))
            if world > 1:
                dist.all_reduce(loss_sum)
            norm = torch.nn.utils.clip_grad_norm_(params, max_grad_norm)
            step_loss = float(loss_sum)
            if not (torch.isfinite(norm) and torch.isfinite(loss_sum)):
                optimizer.zero_grad(set_to_none=True)
                state["skipped"] += 1
                say(f"step {index + 1}: non-finite loss or gradient norm; step skipped "
                    f"({state['skipped']} so far)")
                if state["skipped"] > limit:
                    raise RFError(f"{state['skipped']} steps had a non-finite loss or gradient "
                                  f"(limit {limit}); lower --lr. No adapter was written")
            else:
                try:
                    optimizer.step()
                except RuntimeError as exc:  # e.g. an --lr too large for float32
                    raise RFError(f"optimizer step {index + 1} failed: {exc}") from None
                optimizer.zero_grad(set_to_none=True)
            sched.step()
            state["step"] = index + 1
            state["losses"].append(round(step_loss, 5))
            state["seconds"] = time.perf_counter() - start
            if progress is not None and main_proc:
                progress.update(1)
            if main_proc and (index + 1) % max(1, total // 20) == 0:
                say(f"step {index + 1}/{total} loss {step_loss:.4f} "
                    f"({state['tokens'] * world / max(state['seconds'], 1e-9):,.0f} tok/s)")
            if save_every and (index + 1) % save_every == 0 and index + 1 < total and main_proc:
                _checkpoint(ckpt, state, get_peft_model_state_dict(peft_model), optimizer,
                            sched)
        if state["skipped"] >= total:  # whatever max_bad_steps allows, nothing was learnt
            if main_proc:
                shutil.rmtree(partial, ignore_errors=True)
            raise RFError(f"no optimizer step was applied: all {total} step(s) had a non-finite "
                          "loss or gradient norm; no adapter was written")
        largest, peak = state["largest_micro_batch"], _peak_memory(dev)
        if world > 1:
            tokens = torch.tensor(state["tokens"], device=dev)
            dist.all_reduce(tokens)
            state["tokens"] = int(tokens)
            largest, peak = _highest_over_processes(largest, peak, dev)
        wall = time.perf_counter() - start
        result = {"path": str(out_dir), "base": base, "trainer": self.name,
                  "examples": len(encoded), "skipped_too_long": sum(too_long.values()),
                  "skipped_too_long_by_db": dict(too_long),
                  "tokens": state["tokens"], "steps": total,
                  "skipped_steps": state["skipped"], "loss_curve": state["losses"],
                  "wall_s": round(wall, 2),
                  "tokens_per_s": round(state["tokens"] / max(wall, 1e-9), 1),
                  "processes": world, "device": str(dev), "dtype": str(torch_dtype),
                  "micro_batch_tokens": budget, "grad_checkpointing": checkpointing,
                  "oom_retries": state["oom_retries"],
                  "largest_micro_batch_tokens": largest[0],
                  "largest_micro_batch_rows": largest[1],
                  "peak_gpu_allocated_bytes": peak[0], "peak_gpu_reserved_bytes": peak[1],
                  "lora": {"r": rank, "alpha": alpha, "dropout": dropout, "target": target},
                  "lr": lr, "epochs": epochs, "batch_size": batch_size}
        if main_proc:
            if not _all_finite(peft_model):
                raise RFError("the trained adapter has non-finite weights; it was not written")
            final = partial / "final"
            shutil.rmtree(final, ignore_errors=True)
            peft_model.save_pretrained(final)
            tok.save_pretrained(final)
            if merge:
                merged = peft_model.merge_and_unload()
                merged.save_pretrained(final / "merged")
                tok.save_pretrained(final / "merged")
            (final / "rf_train.json").write_text(json.dumps(result, indent=1))
            replace_dir(final, out_dir)
            shutil.rmtree(partial, ignore_errors=True)
        if world > 1:
            dist.barrier()
        return result

    @staticmethod
    def _accumulate(loss_module, mbs, pad, dev, denom, world: int, dummy: bool):
        """Forward and backward of one step's micro-batches; returns the summed loss."""
        import torch

        loss_sum = torch.zeros((), device=dev)
        for j, mb in enumerate(mbs):
            ids, mask, targets, weights = _collate(mb, pad, dev)
            if dummy:
                weights = weights * 0
            sync = j == len(mbs) - 1 or world == 1
            ctx = loss_module.no_sync() if (world > 1 and not sync) else _null()
            with ctx:
                loss = loss_module(ids, mask, targets, weights) / denom
                (loss * world).backward()
            loss_sum += loss.detach()
        return loss_sum


def _with_adapter(model, lora, target: str, get_peft_model):
    """``model`` with the LoRA adapter; a target no module matches is a usage error naming
    the option and the model's linear layers, where peft would raise a ValueError."""
    from torch import nn

    try:
        return get_peft_model(model, lora)
    except ValueError as exc:
        if "target modules" not in str(exc).lower():
            raise
    names = sorted({n.rsplit(".", 1)[-1] for n, m in model.named_modules()
                    if isinstance(m, nn.Linear)} - {"lm_head"})
    raise BadOption(f"option 'target' of trainer 'peft': {target!r} matches no module of the "
                    f"model; its linear layers: {', '.join(names)} (or all-linear)") from None


def _padded_size(mb) -> list[int]:
    """[padded tokens, rows] of a micro-batch: its rows are padded to its longest."""
    return [len(mb) * max(len(e.input_ids) for e in mb), len(mb)]


def _peak_memory(dev) -> tuple[int | None, int | None]:
    """This process's peak CUDA memory on ``dev`` in bytes, model loading included: what
    tensors held (allocated) and what the allocator held for them, fragmentation included
    (reserved); (None, None) off CUDA."""
    import torch

    if dev.type != "cuda":
        return None, None
    return int(torch.cuda.max_memory_allocated(dev)), int(torch.cuda.max_memory_reserved(dev))


def _highest_over_processes(largest: list[int], peak: tuple, dev) -> tuple[list[int], tuple]:
    """The largest micro-batch (and its rows) and the peak memory of any process."""
    import torch
    import torch.distributed as dist

    highest = torch.tensor([largest[0], *(p or 0 for p in peak)], device=dev)
    dist.all_reduce(highest, op=dist.ReduceOp.MAX)
    top = highest.tolist()
    # the rows of the process whose micro-batch was the largest
    rows = torch.tensor(largest[1] if largest[0] == top[0] else 0, device=dev)
    dist.all_reduce(rows, op=dist.ReduceOp.MAX)
    return [top[0], int(rows)], tuple(None if p is None else v for p, v in zip(peak, top[1:]))


def _enable_checkpointing(peft_model) -> None:
    base = peft_model.get_base_model()
    kwargs = {"use_reentrant": False}
    if hasattr(base, "activation_checkpointing_enable"):  # transformers >= 5.2x
        base.activation_checkpointing_enable(activation_checkpointing_kwargs=kwargs)
    else:  # the name transformers 5.17 has
        base.gradient_checkpointing_enable(gradient_checkpointing_kwargs=kwargs)
    peft_model.enable_input_require_grads()


def _size_micro_batches(peft_model, dev, torch_dtype, dropout: float, mode, tokens,
                        longest: int) -> tuple[int, int | None, bool, str]:
    """(padded-token budget, completion-token budget, checkpointing, why) for this device.

    On a GPU both budgets come from free memory and the model's shapes
    (rf_core.train.memory); an explicit micro_batch_tokens option replaces the padded-token budget,
    and "auto" then checkpoints only if that budget does not fit without it. On a CPU the
    budget is 4096 tokens and "auto" means off: host memory is not sized.
    """
    import torch

    from rf_core.api import ModelShape, plan_memory

    if isinstance(mode, bool):  # callers of the plugin API before auto existed
        mode = "on" if mode else "off"
    if dev.type != "cuda":
        return (tokens or 4096, None, mode == "on",
                "explicit" if mode != "auto" else "auto is off on a CPU")
    free, _ = torch.cuda.mem_get_info(dev)
    shape = ModelShape.from_config(peft_model.get_base_model().config)
    trainable = sum(p.numel() for p in peft_model.parameters() if p.requires_grad)
    elem = torch.finfo(torch_dtype).bits // 8
    plan = plan_memory(free, shape, pending_bytes=trainable * 12, dropout=dropout,
                       mode=mode, longest=longest, dtype_bytes=elem)
    if not tokens:
        return plan.token_budget, plan.completion_budget, plan.checkpointing, plan.reason
    if mode == "auto":
        ckpt = tokens > plan.budget_without_checkpointing
        why = (f"micro_batch_tokens {tokens:,} against {plan.budget_without_checkpointing:,} "
               "that fit without checkpointing")
        return tokens, plan.completion_budget, ckpt, why
    return tokens, plan.completion_budget, mode == "on", plan.reason


class _null:
    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False


def _checkpoint(ckpt: Path, state: dict, weights, optimizer, sched) -> None:
    """Write a resumable checkpoint next to the output, atomically (temp folder, rename)."""
    import torch

    with write_atomic(ckpt) as tmp:
        tmp.mkdir()
        torch.save(weights, tmp / "adapter.pt")
        torch.save(optimizer.state_dict(), tmp / "optimizer.pt")
        torch.save(sched.state_dict(), tmp / "scheduler.pt")
        torch.save(torch.get_rng_state(), tmp / "rng.pt")
        (tmp / "state.json").write_text(json.dumps(state))


@hookimpl
def register_trainers(register):
    register(PeftTrainer())
