"""The dpo trainer's objective, given to the peft trainer's run (``run.train``): pairs and
examples as training units, the reference log-probabilities, the loss, its figures.

The loss of an optimizer step is the sum of three terms, each a mean over that step's
records (all processes'), each term 0 where the step has none of its records:

- DPO (sigmoid): sum(w x -logsigmoid(m)) / sum(w) over its pairs, where the margin
  m = beta x ((pi_c - ref_c) - (pi_r - ref_r)) and pi, ref are the summed log-probabilities
  of the chosen (c) and rejected (r) completion under the adapter and under the same model
  with the adapter disabled (the reference);
- ``sft_weight`` x sum(w x NLL of the chosen completion) / sum(w x its tokens), over its pairs;
- sum(w x NLL of the completion) / sum(w x its tokens) over its example records: the peft
  trainer's loss.

``w`` is each record's ``weight``. As beta -> 0 (beta = 0 allowed) the DPO term tends to the
constant log 2 with no gradient, so with sft_weight 1 the loss is log 2 plus the peft
trainer's loss on the chosen answers.

The reference log-probabilities are computed once, before the first step: the base model's
weights never change, so they do not either; a resumed run computes the same again.
"""

from __future__ import annotations

from collections import Counter
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, Callable, Iterator

from rf_core.api import RFError
from rf_plugins.dpo.options import DEFAULTS
from rf_plugins.peft import model as parts
from rf_plugins.peft.batching import (Encoded, encode_example_record, encode_records,
                                      micro_batches)
from rf_plugins.peft.run import Run, Settings


@dataclass(frozen=True)
class DpoSettings(Settings):
    """The peft run's settings and the dpo trainer's own two options."""

    beta: float = DEFAULTS["beta"]
    sft_weight: float = DEFAULTS["sft_weight"]


@dataclass
class PairUnit:
    """A tokenised preference pair: two rows (chosen, rejected) with one prompt, always in
    the same micro-batch; ``ref`` holds their reference log-probabilities once computed."""

    index: int
    chosen: Encoded
    rejected: Encoded
    weight: float
    ref: tuple[float, float] = (0.0, 0.0)

    @property
    def rows(self) -> list[Encoded]:
        """Chosen, then rejected."""
        return [self.chosen, self.rejected]

    @property
    def width(self) -> int:
        """The longer of the two rows."""
        return max(self.chosen.width, self.rejected.width)

    @property
    def n_rows(self) -> int:
        """Two rows in a micro-batch."""
        return 2

    @property
    def n_tokens(self) -> int:
        """Both rows' tokens."""
        return self.chosen.n_tokens + self.rejected.n_tokens

    @property
    def n_completion(self) -> int:
        """Both completions' tokens (the output layer runs on both)."""
        return self.chosen.n_completion + self.rejected.n_completion


def row_nll(decoder: Any, head: Any, input_ids: Any, attention_mask: Any, targets: Any) -> Any:
    """The summed NLL of each row's completion (minus its log-probability), one per row."""
    nll, keep = parts.completion_nll(decoder, head, input_ids, attention_mask, targets)
    return nll.new_zeros(keep.shape).masked_scatter(keep, nll).sum(1)


class PreferenceLoss:
    """Builds the module whose forward gives a micro-batch's share of the step's loss and
    the pairs' implicit rewards, beta x (log-prob - reference), detached."""

    @staticmethod
    def build(peft_model: Any, beta: float) -> Any:
        """The loss module around ``peft_model`` (a torch ``nn.Module``)."""
        from torch import nn

        class _PreferenceLoss(parts.loss_module_base()):  # type: ignore[misc]
            def row_nll(self, input_ids, attention_mask, targets):
                """Each row's summed completion NLL."""
                return row_nll(self.decoder, self.head, input_ids, attention_mask, targets)

            def forward(self, input_ids, attention_mask, targets, row_coef, pair_rows, ref,
                        pair_coef):
                """sum(row_coef x row NLL) + sum(pair_coef x -logsigmoid(margin))."""
                nll = self.row_nll(input_ids, attention_mask, targets)
                sft = (nll * row_coef).sum()
                rewards = beta * (-nll[pair_rows] - ref)  # pairs x (chosen, rejected)
                margin = rewards[:, 0] - rewards[:, 1]
                dpo = -(nn.functional.logsigmoid(margin) * pair_coef).sum()
                return sft + dpo, rewards.detach()

        return _PreferenceLoss(peft_model)


@contextmanager
def adapter_disabled(model: Any) -> Iterator[None]:
    """The model as the reference: its adapter disabled (peft's ``disable_adapter``); an
    RFError when it cannot be."""
    try:
        ctx = model.disable_adapter()
        ctx.__enter__()
    except (AttributeError, TypeError, ValueError, RuntimeError) as exc:
        raise RFError(f"trainer 'dpo': the model's adapter cannot be disabled ({exc}), so "
                      "there is no reference model for the pairs") from None
    try:
        yield
    finally:
        ctx.__exit__(None, None, None)


def reference_logprobs(model: Any, pairs: list[PairUnit], pad: int, dev: Any,
                       budget: int, completion_budget: int | None) -> None:
    """Set each pair's ``ref``: the summed completion log-probabilities of its chosen and
    rejected rows under ``model`` with the adapter disabled (eval mode, no gradients), in
    micro-batches of the training budget."""
    import torch

    probe = PreferenceLoss.build(model, 0.0)
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad(), adapter_disabled(model):
            for mb in micro_batches(pairs, budget, completion_budget):  # type: ignore[arg-type]
                rows = [row for unit in mb for row in unit.rows]
                ids, mask, targets, _ = parts.collate(rows, pad, dev)
                logp = (-probe.row_nll(ids, mask, targets)).tolist()
                for k, unit in enumerate(mb):
                    unit.ref = (logp[2 * k], logp[2 * k + 1])  # type: ignore[attr-defined]
    finally:
        model.train(was_training)


class DpoObjective:
    """The dpo trainer's objective (the methods of the peft run's ``CompletionObjective``)."""

    what = "example or pair"

    def __init__(self, settings: DpoSettings):
        self.settings = settings
        self.pairs_in = 0
        self._pending: list[Any] = []

    def encode(self, records: list[dict], tok: Any, eot: int, settings: Settings,
               say: Callable[[str], None]) -> tuple[list[Any], Counter]:
        """Pairs and examples, each through rf_core.api's ``encode_example`` (a pair whose
        chosen or rejected row is longer than --max-len is skipped and counted)."""
        def encode(i: int, rec: dict) -> Any:
            w = rec.get("weight", 1)
            if rec.get("kind") != "pair":
                return encode_example_record(tok, i, rec["messages"], rec["completion"], eot, w)
            return PairUnit(i, encode_example_record(tok, i, rec["messages"], rec["chosen"],
                                                     eot, w),
                            encode_example_record(tok, i, rec["messages"], rec["rejected"],
                                                  eot, w), float(w))

        self.pairs_in = sum(1 for r in records if r.get("kind") == "pair")
        return encode_records(records, encode, settings.max_len, say,
                              max_too_long=settings.max_too_long, noun="records")

    def build(self, peft_model: Any) -> Any:
        """The preference loss module."""
        return PreferenceLoss.build(peft_model, self.settings.beta)

    def prepare(self, run: Run) -> None:
        """The reference log-probabilities of the pairs this process trains on."""
        proc = run.proc
        mine = {id(u) for step in run.steps for u in (step[proc.rank::proc.world] or step[:1])}
        pairs = [u for u in run.encoded if isinstance(u, PairUnit) and id(u) in mine]
        if pairs:
            proc.say(f"reference log-probabilities of {len(pairs)} pair(s) (adapter disabled)")
            reference_logprobs(run.model, pairs, run.pad, proc.dev, run.budget,
                               run.completion_budget)

    def scale(self, step: list[Any]) -> tuple[float, float, float]:
        """The step's pair weight, weighted chosen tokens and weighted example tokens."""
        pairs = [u for u in step if isinstance(u, PairUnit)]
        return (sum(u.weight for u in pairs),
                sum(u.weight * u.chosen.n_completion for u in pairs),
                sum(e.weight * e.n_completion for e in step if not isinstance(e, PairUnit)))

    def begin(self, run: Run) -> None:
        """A new attempt at the step: forget the rewards of any earlier one."""
        self._pending = []

    def loss(self, run: Run, mb: list[Any], scale: Any, dummy: bool) -> Any:
        """The micro-batch's share of the step's loss; keeps its pairs' rewards."""
        import torch

        dev = run.proc.dev
        row_coef, pair_rows, ref, pair_coef = self._coefficients(mb, scale)
        rows = [row for unit in mb for row in unit.rows]
        ids, mask, targets, _ = parts.collate(rows, run.pad, dev)
        zero = 0.0 if dummy else 1.0
        loss, rewards = run.loss_module(
            ids, mask, targets, torch.tensor(row_coef, device=dev) * zero,
            torch.tensor(pair_rows, dtype=torch.long, device=dev).reshape(-1, 2),
            torch.tensor(ref, device=dev).reshape(-1, 2),
            torch.tensor(pair_coef, device=dev) * zero)
        if not dummy:
            self._pending.append(rewards)
        return loss

    def _coefficients(self, mb: list[Any],
                      scale: tuple[float, float, float]) -> tuple[list, list, list, list]:
        """Per row, the SFT loss's coefficient; per pair, its rows, reference and DPO
        coefficient."""
        pair_w, chosen_w, example_w = scale
        sft = self.settings.sft_weight
        row_coef: list[float] = []
        pair_rows: list[list[int]] = []
        ref: list[tuple[float, float]] = []
        pair_coef: list[float] = []
        for unit in mb:
            if isinstance(unit, PairUnit):
                pair_rows.append([len(row_coef), len(row_coef) + 1])
                row_coef += [sft * unit.weight / chosen_w, 0.0]
                ref.append(unit.ref)
                pair_coef.append(unit.weight / pair_w)
            else:
                row_coef.append(unit.weight / example_w)
        return row_coef, pair_rows, ref, pair_coef

    def end(self, run: Run, index: int) -> None:
        """Record the step's pair figures (all processes'): pairs, summed reward margin,
        pairs with a positive margin, summed chosen and rejected rewards."""
        import torch
        import torch.distributed as dist

        dev = run.proc.dev
        rewards = (torch.cat(self._pending) if self._pending
                   else torch.zeros((0, 2), device=dev))
        margin = rewards[:, 0] - rewards[:, 1]
        figures = torch.stack([torch.tensor(float(len(rewards)), device=dev), margin.sum(),
                               (margin > 0).sum().float(), rewards[:, 0].sum(),
                               rewards[:, 1].sum()]).double()
        if run.proc.world > 1:
            dist.all_reduce(figures)
        run.state.setdefault("pair_figures", []).append(figures.tolist())
        self._pending = []

    def report(self, run: Run) -> dict:
        """The objective, its settings, the pairs used and skipped, and the implicit
        rewards: over the last epoch's steps, and the margin per step."""
        s = self.settings
        figures = run.state.get("pair_figures", [])
        last = figures[-max(1, run.total // s.epochs):]
        n, margin, right, chosen, rejected = (sum(f[k] for f in last) for k in range(5))

        def mean(total: float, count: float) -> float | None:
            return round(total / count, 5) if count else None

        pairs = sum(1 for u in run.encoded if isinstance(u, PairUnit))
        return {"objective": "dpo", "beta": s.beta, "sft_weight": s.sft_weight,
                "pairs": pairs, "pairs_skipped_too_long": self.pairs_in - pairs,
                "sft_examples": len(run.encoded) - pairs,
                "reward_margin": mean(margin, n), "reward_accuracy": mean(right, n),
                "chosen_reward": mean(chosen, n), "rejected_reward": mean(rejected, n),
                "reward_margin_curve": [mean(f[1], f[0]) for f in figures]}
