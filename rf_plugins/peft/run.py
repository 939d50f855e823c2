"""One training run of the peft trainer, as named steps: the process and its device, setting
up (model, tokenizer, examples, LoRA, optimizer), resuming from a checkpoint, one optimizer
step (micro-batches, out-of-memory retries, the update), checkpoints, the report, saving.

What is learnt is the run's objective (``CompletionObjective``: the completion-only loss of
example records); another trainer built on these steps (the dpo trainer) gives ``train`` an
objective of its own with the same methods.

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
from contextlib import nullcontext
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any, Callable, Self

from rf_core.api import (TRAIN_DEFAULTS, Progress, RFError, check_device, end_of_turn_id,
                         load_model, pack_linears, replace_dir, write_atomic)
from rf_plugins.peft import model as parts
from rf_plugins.peft.batching import (Encoded, cosine_with_warmup, encode_examples, halve,
                                      micro_batches, plan_steps)
from rf_plugins.peft.options import DEFAULTS


@dataclass(frozen=True)
class Settings:
    """Everything a run is asked for: rf-train's arguments and the trainer's options."""

    base: str
    out: str
    rank: int = DEFAULTS["rank"]
    alpha: float = DEFAULTS["alpha"]
    dropout: float = DEFAULTS["dropout"]
    target: str = DEFAULTS["target"]
    lr: float = TRAIN_DEFAULTS.lr
    epochs: int = TRAIN_DEFAULTS.epochs
    warmup: float = DEFAULTS["warmup"]
    weight_decay: float = DEFAULTS["weight_decay"]
    batch_size: int = TRAIN_DEFAULTS.batch_size
    micro_batch_tokens: int | None = DEFAULTS["micro_batch_tokens"]
    max_len: int = TRAIN_DEFAULTS.max_len
    seed: int = TRAIN_DEFAULTS.seed
    grad_checkpointing: str | bool = DEFAULTS["grad_checkpointing"]
    dtype: str = DEFAULTS["dtype"]
    device: str = DEFAULTS["device"]
    kernels: str = DEFAULTS["kernels"]
    resume: bool = False
    merge: bool = DEFAULTS["merge"]
    force: bool = False
    max_grad_norm: float = DEFAULTS["max_grad_norm"]
    max_bad_steps: int | None = DEFAULTS["max_bad_steps"]
    save_every: int = DEFAULTS["save_every"]
    max_too_long: float | None = None

    @classmethod
    def of(cls, **given: Any) -> Self:
        """From the keyword arguments of ``train``; those it does not know are ignored (the
        API passes arguments that later releases add)."""
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in given.items() if k in known})


@dataclass(frozen=True)
class Process:
    """This process in a (possibly distributed) run: its rank, its device, and whether it
    is the main one, the only one that reports and writes."""

    world: int
    rank: int
    local: int
    cuda: bool
    dev: Any  # torch.device
    say: Callable[[str], None]

    @property
    def main(self) -> bool:
        """Whether this is the process that reports and writes files."""
        return self.rank == 0

    @classmethod
    def start(cls, device: str, report: Callable[[str], None]) -> Process:
        """This process's place in the run (torchrun's environment), its device, and the
        process group where there are several."""
        import torch
        import torch.distributed as dist

        if device != "auto":
            check_device(device)  # a missing GPU said before the model loads
        world = int(os.environ.get("WORLD_SIZE", "1"))
        rank = int(os.environ.get("RANK", "0"))
        local = int(os.environ.get("LOCAL_RANK", "0"))
        cuda = torch.cuda.is_available() and device in ("auto", "cuda")
        dev = torch.device(f"cuda:{local}" if cuda else (device if device != "auto" else "cpu"))
        if world > 1 and not dist.is_initialized():
            dist.init_process_group("nccl" if cuda else "gloo")
        return cls(world, rank, local, cuda, dev, report if rank == 0 else _silent)


def _silent(message: str) -> None:
    """What the processes other than the main one report: nothing."""


def prepare_output(settings: Settings, proc: Process) -> Path:
    """The folder the run writes into before it is renamed to ``out`` (OUT.partial); an
    existing ``out`` without ``force`` is an error, and without ``resume`` any earlier
    partial run is removed."""
    out_dir = Path(settings.out)
    partial = out_dir.with_name(out_dir.name + ".partial")
    if out_dir.exists() and not settings.force:
        raise RFError(f"{settings.out} exists; pass --force to replace it")
    if not settings.resume and proc.main:
        shutil.rmtree(partial, ignore_errors=True)
    return partial


class CompletionObjective:
    """The peft trainer's objective: sum(weight x NLL) over the completion tokens of a
    step's examples, over sum(weight x completion tokens) of the step (in every process).

    The methods a run calls, in order: ``encode`` the records into units (``Encoded``, or
    any with its width, n_rows, n_tokens, n_completion, weight), ``build`` the loss module
    around the adapted model, ``prepare`` the run once set up; then per optimizer step
    ``scale`` (from the whole step), ``begin`` (each attempt of the step), ``loss`` (each
    micro-batch, inside DDP's context) and ``end`` (after the update); ``report`` adds its
    figures to rf-train's report.
    """

    what = "example"  # what "no ... fits --max-len" names

    def encode(self, records: list[dict], tok: Any, eot: int, settings: Settings,
               say: Callable[[str], None]) -> tuple[list[Encoded], Any]:
        """The units to train on and the records skipped as too long, by database."""
        return encode_examples(records, tok, eot, settings.max_len, say,
                               max_too_long=settings.max_too_long)

    def build(self, peft_model: Any) -> Any:
        """The torch module whose forward gives a micro-batch's loss."""
        return parts.CompletionLoss.build(peft_model)

    def prepare(self, run: Run) -> None:
        """Anything to compute once the model, optimizer and steps are set up: nothing."""

    def scale(self, step: list[Encoded]) -> Any:
        """The step's normaliser, from all its units (all processes')."""
        return sum(e.weight * e.n_completion for e in step)

    def begin(self, run: Run) -> None:
        """An attempt at a step starts (again, after running out of memory): nothing."""

    def loss(self, run: Run, mb: list[Encoded], scale: Any, dummy: bool) -> Any:
        """The micro-batch's share of the step's loss (0 x its loss when ``dummy``)."""
        ids, mask, targets, weights = parts.collate(mb, run.pad, run.proc.dev)
        if dummy:
            weights = weights * 0
        return run.loss_module(ids, mask, targets, weights) / scale

    def end(self, run: Run, index: int) -> None:
        """Step ``index`` is done: nothing to record."""

    def report(self, run: Run) -> dict:
        """Figures of its own for rf-train's report: none."""
        return {}


def train(records: list[dict], settings: Settings, say: Callable[[str], None],
          progress: Progress | None, trainer: str,
          objective: Any = None) -> dict:
    """A whole run, as a trainer's ``train`` runs it: set up (``objective``, default the
    completion loss), resume where asked, the steps, the end check, the report, saving.
    Returns the report."""
    proc = Process.start(settings.device, say)
    partial = prepare_output(settings, proc)
    training = setup(records, settings, proc, partial, objective)
    if settings.resume:
        resume(training)
    run_steps(training, progress)
    check_learnt(training)
    result = report(training, trainer)
    save(training, result)
    return result


# largest_micro_batch: [padded tokens, rows] of the largest one run, for the report
def fresh_state() -> dict:
    """The progress a run records and checkpoints, before its first step."""
    return {"step": 0, "skipped": 0, "losses": [], "tokens": 0, "seconds": 0.0,
            "oom_retries": 0, "largest_micro_batch": [0, 0]}


@dataclass
class Run:
    """A run set up and under way: the model and its optimizer, the planned steps, the
    micro-batch budgets and the recorded progress (``state``)."""

    settings: Settings
    proc: Process
    partial: Path
    torch_dtype: Any
    tok: Any
    model: Any  # the peft model
    encoded: list[Any]  # the units trained on: Encoded examples, or the objective's own
    too_long: Any  # Counter: skipped examples by database
    pad: int
    budget: int
    completion_budget: int | None
    checkpointing: bool
    loss_module: Any = None
    params: list = field(default_factory=list)
    optimizer: Any = None
    sched: Any = None
    steps: list[list[Encoded]] = field(default_factory=list)
    limit: int = 0
    state: dict = field(default_factory=fresh_state)
    start: float = 0.0
    objective: Any = field(default_factory=CompletionObjective)

    @property
    def total(self) -> int:
        """The number of optimizer steps planned, all epochs."""
        return len(self.steps)

    @property
    def checkpoint_dir(self) -> Path:
        """Where --resume finds the last checkpoint."""
        return self.partial / "checkpoint"


# -- setup ----------------------------------------------------------------------------------------

def setup(examples: list[dict], settings: Settings, proc: Process, partial: Path,
          objective: Any = None) -> Run:
    """Load the model and tokenizer, encode the examples, apply LoRA, size the micro-batches
    for the device, and build the optimizer and the planned steps; then the objective
    (default ``CompletionObjective``) prepares what it needs."""
    import torch

    objective = objective or CompletionObjective()
    torch_dtype = {"auto": torch.bfloat16 if proc.dev.type == "cuda" else torch.float32,
                   "bf16": torch.bfloat16, "fp32": torch.float32}[settings.dtype]
    if proc.world > 1:  # before the model loads: a mismatch is said at once
        parts.same_on_every_process(examples, proc.rank, proc.dev)
    tok, base_model = load_model(settings.base, dtype=torch_dtype, device=proc.dev)
    eot = end_of_turn_id(tok)
    encoded, too_long = objective.encode(examples, tok, eot, settings, proc.say)
    if not encoded:
        raise RFError(f"no {objective.what} fits --max-len; nothing to train on")
    if settings.batch_size < proc.world:
        raise RFError(f"--batch-size {settings.batch_size} is smaller than the {proc.world} "
                      "processes")
    peft_model = apply_lora(base_model, settings)
    if settings.kernels == "auto":  # the frozen fp32 layers on a CPU: LoRA's own layers train
        packed = pack_linears(peft_model)
        if packed:
            proc.say(f"{packed} frozen linear layers on oneDNN's packed fp32 kernels")
    budget, completion_budget, checkpointing, why = parts.size_micro_batches(
        peft_model, proc.dev, torch_dtype, settings.dropout, settings.grad_checkpointing,
        settings.micro_batch_tokens, max(e.n_rows * e.width for e in encoded))
    proc.say(f"micro-batches of at most {budget:,} padded tokens"
             + (f" and {completion_budget:,} completion tokens" if completion_budget else "")
             + f"; gradient checkpointing {'on' if checkpointing else 'off'} ({why})")
    pad = tok.pad_token_id if tok.pad_token_id is not None else eot
    run = Run(settings, proc, partial, torch_dtype, tok, peft_model, encoded, too_long, pad,
              budget, completion_budget, checkpointing, objective=objective)
    prepare_optimization(run)
    objective.prepare(run)
    return run


def apply_lora(base_model: Any, settings: Settings) -> Any:
    """The base model with a fresh LoRA adapter (seeded: the same run starts the same)."""
    import torch
    from peft import LoraConfig

    torch.manual_seed(settings.seed)
    lora = LoraConfig(r=settings.rank, lora_alpha=settings.alpha, lora_dropout=settings.dropout,
                      target_modules=settings.target, task_type="CAUSAL_LM")
    return parts.with_adapter(base_model, lora, settings.target)


def prepare_optimization(run: Run) -> None:
    """The loss module (under DDP where there are several processes), AdamW over the
    adapter's weights, the planned steps, the warm-up and cosine schedule, and the number of
    non-finite steps tolerated."""
    import torch

    s, proc = run.settings, run.proc
    if run.checkpointing:
        parts.enable_checkpointing(run.model)
    run.model.train()
    run.loss_module = run.objective.build(run.model)
    if proc.world > 1:
        run.loss_module = torch.nn.parallel.DistributedDataParallel(
            run.loss_module, device_ids=[proc.local] if proc.cuda else None)
    run.params = [p for p in run.model.parameters() if p.requires_grad]
    run.optimizer = torch.optim.AdamW(run.params, lr=s.lr, weight_decay=s.weight_decay)
    run.steps = plan_steps(run.encoded, s.batch_size, s.epochs, s.seed)
    total = run.total
    warm = int(round(s.warmup * total))
    run.sched = torch.optim.lr_scheduler.LambdaLR(
        run.optimizer, lambda step: cosine_with_warmup(step, total, warm))
    run.limit = s.max_bad_steps if s.max_bad_steps is not None else max(3, total // 10)


# -- resume and checkpoints -----------------------------------------------------------------------

def resume(run: Run) -> None:
    """Continue from the last checkpoint of the partial output, where there is one: the
    adapter's weights, the optimizer, the schedule, the random state and the progress."""
    import torch
    from peft import set_peft_model_state_dict

    ckpt = run.checkpoint_dir
    if not (ckpt / "state.json").is_file():
        return
    dev = run.proc.dev
    run.state = {"oom_retries": 0, "largest_micro_batch": [0, 0],
                 **json.loads((ckpt / "state.json").read_text())}
    set_peft_model_state_dict(run.model, torch.load(ckpt / "adapter.pt", map_location=dev))
    run.optimizer.load_state_dict(torch.load(ckpt / "optimizer.pt", map_location=dev))
    run.sched.load_state_dict(torch.load(ckpt / "scheduler.pt"))
    torch.set_rng_state(torch.load(ckpt / "rng.pt"))
    run.proc.say(f"resuming at step {run.state['step']} of {run.total}")


def save_checkpoint(run: Run) -> None:
    """Write a resumable checkpoint next to the output, atomically (temp folder, rename)."""
    import torch
    from peft.utils import get_peft_model_state_dict

    with write_atomic(run.checkpoint_dir) as tmp:
        tmp.mkdir()
        torch.save(get_peft_model_state_dict(run.model), tmp / "adapter.pt")
        torch.save(run.optimizer.state_dict(), tmp / "optimizer.pt")
        torch.save(run.sched.state_dict(), tmp / "scheduler.pt")
        torch.save(torch.get_rng_state(), tmp / "rng.pt")
        (tmp / "state.json").write_text(json.dumps(run.state))


# -- the steps ------------------------------------------------------------------------------------

def run_steps(run: Run, progress: Progress | None) -> None:
    """Every planned step from the first not yet done, each followed by its bookkeeping."""
    proc, state = run.proc, run.state
    proc.say(f"training {len(run.encoded)} examples ({sum(run.too_long.values())} too long), "
             f"{run.total} steps, {proc.world} process(es), {proc.dev}, {run.torch_dtype}")
    run.start = time.perf_counter() - state["seconds"]
    if progress is not None and proc.main:
        progress.start(run.total, "step")
        progress.update(state["step"])
    for index in range(state["step"], run.total):
        step_loss = train_step(run, index)
        after_step(run, index, step_loss, progress)


def train_step(run: Run, index: int) -> float:
    """Optimizer step ``index``: this process's share of its examples, forward and backward
    in micro-batches (retried smaller after running out of memory), then the update; returns
    the step's loss."""
    step = run.steps[index]
    mine = step[run.proc.rank::run.proc.world]
    denom = run.objective.scale(step)
    dummy = not mine  # a short last step: take part with zero weight
    planned = micro_batches(mine or step[:1], run.budget, run.completion_budget)
    mbs, loss_sum = forward_backward(run, index, planned, denom, dummy)
    if not dummy:  # counted on the host: no device sync
        run.state["tokens"] += sum(e.n_tokens for mb in mbs for e in mb)
    # the micro-batches that ran, after any out-of-memory halving
    run.state["largest_micro_batch"] = max(run.state["largest_micro_batch"],
                                           *(parts.padded_size(mb) for mb in mbs))
    step_loss = apply_update(run, index, loss_sum)
    run.objective.end(run, index)
    return step_loss


def forward_backward(run: Run, index: int, mbs: list[list[Encoded]], denom: float,
                     dummy: bool) -> tuple[list[list[Encoded]], Any]:
    """Accumulate the step's gradients; after CUDA runs out of memory, discard the attempt
    and retry with what ``after_out_of_memory`` chooses. Returns the micro-batches that ran
    and the summed loss."""
    import torch

    while True:
        try:
            return mbs, accumulate(run, mbs, denom, dummy)
        except torch.cuda.OutOfMemoryError:
            pass  # handled below: the traceback holds the activations until here
        # free this attempt's gradients and activations before trying again
        run.optimizer.zero_grad(set_to_none=True)
        if run.proc.dev.type == "cuda":
            torch.cuda.empty_cache()
        mbs = after_out_of_memory(run, index, mbs)


def after_out_of_memory(run: Run, index: int,
                        mbs: list[list[Encoded]]) -> list[list[Encoded]]:
    """The micro-batches to retry a step with after running out of memory: halved, else the
    same with gradient checkpointing turned on; an RFError when neither is left (or in a
    distributed run, whose processes must take the same steps)."""
    say = run.proc.say
    if run.proc.world > 1:
        raise RFError(f"step {index + 1}: CUDA out of memory in a distributed run; pass a "
                      f"smaller -o micro_batch_tokens than {run.budget}")
    run.state["oom_retries"] += 1
    smaller = halve(mbs)
    if smaller is not None:
        say(f"step {index + 1}: CUDA out of memory in {len(mbs)} micro-batch(es); retrying it "
            f"in {len(smaller)} ({run.state['oom_retries']} retries so far)")
        return smaller
    if not run.checkpointing:
        say(f"step {index + 1}: CUDA out of memory with one example per micro-batch; "
            "retrying it with gradient checkpointing on")
        parts.enable_checkpointing(run.model)
        run.checkpointing = True
        return mbs
    raise RFError(f"step {index + 1}: CUDA out of memory with one example per micro-batch "
                  "and gradient checkpointing on; lower --max-len")


def accumulate(run: Run, mbs: list[list[Encoded]], denom: Any, dummy: bool) -> Any:
    """Forward and backward of one step's micro-batches; returns the summed loss."""
    import torch

    world, dev = run.proc.world, run.proc.dev
    loss_sum = torch.zeros((), device=dev)
    run.objective.begin(run)
    for j, mb in enumerate(mbs):
        sync = j == len(mbs) - 1 or world == 1
        ctx = run.loss_module.no_sync() if (world > 1 and not sync) else nullcontext()
        with ctx:
            loss = run.objective.loss(run, mb, denom, dummy)
            (loss * world).backward()
        loss_sum += loss.detach()
    return loss_sum


def apply_update(run: Run, index: int, loss_sum: Any) -> float:
    """Clip and apply the step's gradients, or skip a step whose loss or gradient norm is not
    finite (an RFError past the limit); advance the schedule. Returns the step's loss."""
    import torch
    import torch.distributed as dist

    if run.proc.world > 1:
        dist.all_reduce(loss_sum)
    norm = torch.nn.utils.clip_grad_norm_(run.params, run.settings.max_grad_norm)
    step_loss = float(loss_sum)
    if not (torch.isfinite(norm) and torch.isfinite(loss_sum)):
        run.optimizer.zero_grad(set_to_none=True)
        run.state["skipped"] += 1
        skipped = run.state["skipped"]
        run.proc.say(f"step {index + 1}: non-finite loss or gradient norm; step skipped "
                     f"({skipped} so far)")
        if skipped > run.limit:
            raise RFError(f"{skipped} steps had a non-finite loss or gradient (limit "
                          f"{run.limit}); lower --lr. No adapter was written")
    else:
        try:
            run.optimizer.step()
        except RuntimeError as exc:  # e.g. an --lr too large for float32
            raise RFError(f"optimizer step {index + 1} failed: {exc}") from None
        run.optimizer.zero_grad(set_to_none=True)
    run.sched.step()
    return step_loss


def after_step(run: Run, index: int, step_loss: float, progress: Progress | None) -> None:
    """Record the step, report progress now and then, checkpoint every ``save_every``."""
    state, proc, total, done = run.state, run.proc, run.total, index + 1
    state["step"] = done
    state["losses"].append(round(step_loss, 5))
    state["seconds"] = time.perf_counter() - run.start
    if progress is not None and proc.main:
        progress.update(1)
    if proc.main and done % max(1, total // 20) == 0:
        proc.say(f"step {done}/{total} loss {step_loss:.4f} "
                 f"({state['tokens'] * proc.world / max(state['seconds'], 1e-9):,.0f} tok/s)")
    every = run.settings.save_every
    if every and done % every == 0 and done < total and proc.main:
        save_checkpoint(run)


# -- the end --------------------------------------------------------------------------------------

def check_learnt(run: Run) -> None:
    """An RFError when no step was applied (whatever max_bad_steps allows, nothing was
    learnt); the partial output goes."""
    if run.state["skipped"] >= run.total:
        if run.proc.main:
            shutil.rmtree(run.partial, ignore_errors=True)
        raise RFError(f"no optimizer step was applied: all {run.total} step(s) had a "
                      "non-finite loss or gradient norm; no adapter was written")


def report(run: Run, trainer: str) -> dict:
    """What rf-train prints: the run's figures, over all processes."""
    import torch
    import torch.distributed as dist

    s, proc, state = run.settings, run.proc, run.state
    largest, peak = state["largest_micro_batch"], parts.peak_memory(proc.dev)
    if proc.world > 1:
        tokens = torch.tensor(state["tokens"], device=proc.dev)
        dist.all_reduce(tokens)
        state["tokens"] = int(tokens)
        largest, peak = parts.highest_over_processes(largest, peak, proc.dev)
    wall = time.perf_counter() - run.start
    too_long = sum(run.too_long.values())
    return {"path": str(Path(s.out)), "base": s.base, "trainer": trainer,
            "examples": len(run.encoded), "skipped_too_long": too_long,
            "skipped_too_long_by_db": dict(run.too_long),
            "tokens": state["tokens"], "steps": run.total,
            "skipped_steps": state["skipped"], "loss_curve": state["losses"],
            "wall_s": round(wall, 2),
            "tokens_per_s": round(state["tokens"] / max(wall, 1e-9), 1),
            "processes": proc.world, "device": str(proc.dev), "dtype": str(run.torch_dtype),
            "micro_batch_tokens": run.budget, "grad_checkpointing": run.checkpointing,
            "oom_retries": state["oom_retries"],
            "largest_micro_batch_tokens": largest[0],
            "largest_micro_batch_rows": largest[1],
            "peak_gpu_allocated_bytes": peak[0], "peak_gpu_reserved_bytes": peak[1],
            "lora": {"r": s.rank, "alpha": s.alpha, "dropout": s.dropout, "target": s.target},
            "lr": s.lr, "epochs": s.epochs, "batch_size": s.batch_size,
            **run.objective.report(run)}


def save(run: Run, result: dict) -> None:
    """On the main process: the adapter, the tokenizer (and the merged model where asked)
    and ``rf_train.json`` into OUT.partial/final, renamed to OUT; then every process waits
    for it."""
    import torch.distributed as dist

    if run.proc.main:
        if not parts.all_finite(run.model):
            raise RFError("the trained adapter has non-finite weights; it was not written")
        final = run.partial / "final"
        shutil.rmtree(final, ignore_errors=True)
        run.model.save_pretrained(final)
        run.tok.save_pretrained(final)
        if run.settings.merge:
            merged = run.model.merge_and_unload()
            merged.save_pretrained(final / "merged")
            run.tok.save_pretrained(final / "merged")
        (final / "rf_train.json").write_text(json.dumps(result, indent=1))
        replace_dir(final, Path(run.settings.out))
        shutil.rmtree(run.partial, ignore_errors=True)
    if run.proc.world > 1:
        dist.barrier()
