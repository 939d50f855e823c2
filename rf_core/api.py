"""The import surface for plugin authors: everything a sampler, verifier, trainer or dataset
plugin needs, and a promise that these names stay.

    from rf_core.api import hookimpl, Option, attach, task_messages

The built-in plugins (rf_plugins/) import only from here, exactly as a third-party plugin
would. Names are loaded on first use, so importing this module costs nothing and needs
neither torch nor sqlglot; the model functions import torch when called.

The four plugin kinds, with the exact keyword arguments each receives, are the Protocol
classes below: ``SamplerEngine`` (with ``SampleRequest`` and ``LoadedEngine``; the
record-level ``Sampler`` is kept one release as an escape hatch), ``Verifier``, ``Trainer``
and ``Dataset``. Every method also
receives the plugin's own declared options (see ``Option``) as keyword arguments, and must
accept ``**options`` so that arguments added in later releases do not break it.

A verifier that adds to the built-in one (another matcher, extra checks) calls
``verify_tasks`` (the sqlite verifier's own function: it writes ``exec``, ``verdicts``,
``correct``, ``gold_exec`` and ``verified_by``) and adjusts what it yields.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any, Callable, Iterable, Iterator, Protocol, runtime_checkable

from rf_core.data.items import BadItem, DatasetItem
from rf_core.errors import BadOption, RFError, UsageError
from rf_core.model.request import Conversation, SampleRequest
from rf_core.plugins.hookspecs import hookimpl
from rf_core.plugins.options import DEVICE_PATTERN, Option, check_device

# report(text): one line to stderr under the command's name
Report = Callable[[str], None]


class Progress(Protocol):
    """Progress of a command's unit of work (tasks for rf-sample and rf-exec, steps for
    rf-train): a bar with rate and ETA on a terminal, plain periodic lines elsewhere."""

    def start(self, total: int | None, unit: str = "it") -> None:
        """Begin (or restart) counting ``total`` units (None: unknown) called ``unit``."""

    def update(self, n: int = 1) -> None:
        """``n`` more units done."""


@runtime_checkable
class SamplerEngine(Protocol):
    """A sampler engine: generates k answers for each of a batch of conversations; the core
    does the rest (reading tasks in windows, rendering prompts with ``task_messages``, turning
    answers into candidates with ``attach``, progress, and the rate line: tasks, candidates,
    new tokens, seconds, tok/s). Registered with ``register_samplers`` like any sampler; an
    object with ``load`` is an engine.

    Optional declarations, read with defaults where absent:
    ``priority`` (int; ``--sampler auto`` tries engines from the highest down; None or absent:
    auto never picks it), ``rule`` (when auto picks it, in words: "a CUDA GPU with flash
    attention"; shown in rf-sample's help and rf-doctor) and ``available()``.
    """

    name: str
    options: tuple[Option, ...]

    def available(self) -> tuple[bool, str]:
        """Whether ``--sampler auto`` should pick this engine on this machine, and why (or
        why not) in a few words ("no CUDA GPU"); cheap, and never loads a model."""

    def load(self, request: SampleRequest, *, report: Report,
             **options: Any) -> LoadedEngine:
        """Get ready for ``request`` (load the model, start a server ...) and return what
        generates: another object, or the engine itself. ``options`` are the engine's own
        declared options; ``report`` says a line on stderr."""


@runtime_checkable
class LoadedEngine(Protocol):
    """An engine loaded for one request (``SamplerEngine.load``).

    Optional: ``window`` (int, conversations per ``generate`` call, default 1024),
    ``candidate_model`` (the model name candidates record, default the request's ``model``),
    ``detail()`` (a few words added to each rate line, e.g. a cache hit rate), ``phases()``
    (where the generation time went so far: a dict with ``prefill_s``, ``prefill_tokens``,
    ``decode_s`` and ``new_tokens``, shown on the summary line by ``phase_text`` and written
    to ``rf-sample --stats``), ``close()``
    (called once after the last window; may report a summary or raise RFError) and
    ``too_long(conversations)`` (for each conversation None, or why it does not fit the
    model's context with ``max_new_tokens``: rf-revise skips those; ``over_context`` does it
    for a transformers tokenizer)."""

    def generate(self, conversations: list[Conversation], *, first: int,
                 **context: Any) -> list[list[dict]]:
        """k answers for each conversation, in order: each ``{"text", "logprob", "n_tokens",
        "finished", "seed"}`` (``logprob``: the sum of the sampled tokens' log-probabilities
        or None; ``n_tokens``: generated tokens, stop token excluded, or None; ``finished``:
        a stop token ended it; ``seed``: the seed that reproduces this one answer, or None)
        and, for answers that are SQL already, ``"sql"`` (used as given, not extracted).
        ``first`` is the index of ``conversations[0]`` among the run's tasks (for
        ``sample_seed``). ``context`` carries ``tasks``, the task records of the batch (for
        engines that answer from the input), and ``positions``, each conversation's place in
        the whole input (``first``, ``first + 1`` ... unless ``rf-sample --shard I/N`` keeps
        every N-th task: seed by these so a shard samples as the unsharded run does); accept
        ``**context`` so that later releases may pass more."""


@runtime_checkable
class Sampler(Protocol):
    """A record-level sampler: the escape hatch, kept for one release (write a
    ``SamplerEngine`` instead). Adds ``messages`` and k ``candidates`` to each task (use
    ``attach``), in input order."""

    name: str
    options: tuple[Option, ...]

    def sample(self, tasks: Iterable[dict], *, model: str, adapter: str | None, k: int,
               temperature: float, top_p: float, max_new_tokens: int, seed: int,
               report: Report, progress: Progress, **options: Any) -> Iterator[dict]:
        """Yield every task, in input order, with ``messages`` and ``candidates`` set by
        ``attach(task, task_messages(task), answers, ...)``: k answers, each ``{"text",
        "logprob", "n_tokens", "finished"}`` and, where the engine can reproduce that one
        answer from a seed, ``"seed"`` (the candidate's ``seed``; else null). ``seed`` here
        is rf-sample's --seed: derive per-sample seeds with ``sample_seed(seed, i, j)``."""


@runtime_checkable
class Verifier(Protocol):
    """Sets ``correct`` (True, False or None) on every candidate and ``verified_by``
    ({"verifier", "matcher"}) on every task, in input order. ``matcher`` names the matcher
    rf-exec was asked for; a verifier that does not use matchers names its own rule in
    ``verified_by.matcher``."""

    name: str
    options: tuple[Option, ...]

    def verify(self, tasks: Iterable[dict], *, matcher: str, jobs: int, limits: Limits,
               report: Report, progress: Progress, **options: Any) -> Iterator[dict]:
        """Yield every task, in input order, with ``correct`` on every candidate and
        ``verified_by``; write ``exec`` too where candidates run (rf-vote needs it). The
        README's "Verifiers" states the contract; ``verify_tasks`` is the built-in
        verifier, to call from one that wraps it."""


@runtime_checkable
class Trainer(Protocol):
    """Trains an adapter on ``examples`` from the ``base`` model into the folder ``out``
    and returns what rf-train prints (a JSON-able dict).

    Optional: ``accepts``, the record kinds the trainer takes, a tuple of "example" and
    "pair" (``("example",)`` where absent). rf-train reads both kinds, each checked against
    its own schema, and passes them all, in input order, in the one list ``examples``; a
    kind the trainer does not take stops rf-train before ``train`` is called, with an error
    naming the trainers that take it. A ``pair`` record (schemas/pair.schema.json) holds
    ``messages``, a ``chosen`` and a ``rejected`` completion and a ``weight``.

    Optional: a trainer may also offer rf-doctor its memory plan (``rf-doctor --trainer NAME
    -o NAME VALUE``) with a method::

        def memory_plan(self, config: dict, *, free_bytes: int | None, max_len: int,
                        **options: Any) -> dict

    ``config``: the model's config.json, as a dict (the model is not loaded); ``free_bytes``:
    the GPU memory to plan for (None: no GPU, a CPU run); ``max_len``: rf-train's
    ``--max-len``; ``options``: the trainer's declared options, as rf-train passes them. It
    returns a JSON-able dict with at least ``device`` ("cuda" or "cpu"),
    ``micro_batch_tokens``, ``completion_tokens`` (or None), ``grad_checkpointing`` and
    ``reason``; it may add ``free_gb`` and the values of the options the plan depends on
    (rf-doctor's table shows those). The method is not a member of this Protocol: a trainer
    without it is still a Trainer, and rf-doctor then says it has no plan to show.
    """

    name: str
    options: tuple[Option, ...]

    def train(self, examples: list[dict], *, base: str, out: str, epochs: int, lr: float,
              batch_size: int, max_len: int, seed: int, max_too_long: float | None,
              resume: bool, force: bool, report: Report, progress: Progress,
              **options: Any) -> dict:
        """Train from ``base`` on ``examples`` (rf-filter's and rf-inject's records, of the
        kinds in ``accepts``) and save the adapter in the folder ``out``; return what
        rf-train prints. rf-train's
        defaults for ``epochs``, ``lr``, ``batch_size``, ``max_len`` and ``seed`` are
        ``TRAIN_DEFAULTS``."""


@runtime_checkable
class Dataset(Protocol):
    """Yields a ``DatasetItem`` per question (id, db_id, db_path, question, gold_sql, split,
    optional notes), or a ``BadItem`` for an entry of its source that is not one; rf-data
    does the rest the same way for every dataset: skips and counts bad items in one line,
    skips items whose database is missing, takes the ``--limit``/``--seed`` sample, grades
    hardness and writes the schema context (``describe_database`` with ``--values``).
    ``root`` is rf-data's ``--root`` (None when not given).

    Escape hatch, kept for one release: a dataset with no ``items`` but a method
    ``tasks(*, root, split, limit, seed, values, report, **options)`` yielding whole task
    records (``make_task``; sampled with ``pick(tasks, limit, seed)``) still works; rf-data
    then does none of the above but ``--exclude``. New datasets implement ``items``."""

    name: str
    options: tuple[Option, ...]

    def items(self, *, root: str | None, split: str, report: Report,
              **options: Any) -> Iterable[DatasetItem | BadItem]:
        """Yield the items of ``split`` in a fixed order (the sample depends on it). A
        dataset class may declare ``splits``, the names rf-data accepts (see the README's
        "Datasets"); a pseudo-split such as ``all`` gives each item its own split."""


# name -> module it lives in; loaded on first use (PEP 562). The TYPE_CHECKING block below
# imports the same names, so type checkers and IDEs see their real types
_LAZY = {
    # what every plugin may use
    "to_stderr": "rf_core.records.io",
    "write_atomic": "rf_core.records.files",
    "replace_dir": "rf_core.records.files",
    "cache_dir": "rf_core.model.cache",
    # record-level datasets and samplers (the escape hatch)
    "make_task": "rf_core.data.tasks",
    "pick": "rf_core.data.tasks",
    "task_messages": "rf_core.model.prompts",
    "attach": "rf_core.model.candidates",
    # sampler engines on transformers models
    "sample_seed": "rf_core.model.seeds",
    "load_for_sampling": "rf_core.model.loading",
    "encode_prompt": "rf_core.model.chat",
    "context_length": "rf_core.model.chat",
    "over_context": "rf_core.model.chat",
    "end_of_turn_ids": "rf_core.model.loading",
    "Generation": "rf_core.model.candidates",
    "decode_answers": "rf_core.model.candidates",
    "phase_text": "rf_core.model.sampling",
    "resolve_model": "rf_core.model.loading",
    "random_folder": "rf_core.model.loading",
    "stop_engine": "rf_core.model.engines",
    "engine_alive": "rf_core.model.engines",
    "flash_attention": "rf_core.model.environment",
    "pack_linears": "rf_core.model.onednn",
    # trainers
    "load_model": "rf_core.model.loading",
    "encode_example": "rf_core.model.chat",
    "end_of_turn_id": "rf_core.model.loading",
    "canonical_sql": "rf_core.train.examples",
    "TRAIN_DEFAULTS": "rf_core.train.defaults",
    # verifiers and matchers
    "Executor": "rf_core.exec.sqlite",
    "Limits": "rf_core.exec.sqlite",
    "Matcher": "rf_core.exec.matching",
    "official_match": "rf_core.exec.matching",
    "official_rewrite": "rf_core.exec.matching",
    "lenient_match": "rf_core.exec.matching",
    "verify_tasks": "rf_core.exec.verify",
    "DEFAULT_VARIANTS_MAX_MB": "rf_core.exec.variants",
    "DEFAULT_VARIANTS_MAX_S": "rf_core.exec.variants",
    "MAX_VARIANTS": "rf_core.exec.variants",
    "DEFAULT_GOLD_VARIANTS_MAX_S": "rf_core.exec.gold_variants",
}
_RENAMED = {"load_model": "load", "resolve_model": "resolve",
            "DEFAULT_VARIANTS_MAX_MB": "DEFAULT_MAX_MB",
            "DEFAULT_VARIANTS_MAX_S": "DEFAULT_MAX_S",
            "DEFAULT_GOLD_VARIANTS_MAX_S": "DEFAULT_MAX_S"}

if TYPE_CHECKING:
    from rf_core.data.tasks import make_task, pick
    from rf_core.exec.gold_variants import DEFAULT_MAX_S as DEFAULT_GOLD_VARIANTS_MAX_S
    from rf_core.exec.matching import Matcher, official_match, official_rewrite, lenient_match
    from rf_core.exec.sqlite import Executor, Limits
    from rf_core.exec.variants import (DEFAULT_MAX_MB as DEFAULT_VARIANTS_MAX_MB,
                                       DEFAULT_MAX_S as DEFAULT_VARIANTS_MAX_S, MAX_VARIANTS)
    from rf_core.exec.verify import verify_tasks
    from rf_core.model.cache import cache_dir
    from rf_core.model.candidates import attach, Generation, decode_answers
    from rf_core.model.chat import context_length, encode_prompt, encode_example, over_context
    from rf_core.model.engines import stop_engine, engine_alive
    from rf_core.model.environment import flash_attention
    from rf_core.model.onednn import pack_linears
    from rf_core.model.loading import (load_for_sampling,
                                       end_of_turn_ids, resolve as resolve_model, random_folder,
                                       load as load_model, end_of_turn_id)
    from rf_core.model.prompts import task_messages
    from rf_core.model.sampling import phase_text
    from rf_core.model.seeds import sample_seed
    from rf_core.records.files import write_atomic, replace_dir
    from rf_core.records.io import to_stderr
    from rf_core.train.defaults import TRAIN_DEFAULTS
    from rf_core.train.examples import canonical_sql

__all__ = ["hookimpl", "Option", "DEVICE_PATTERN", "check_device", "Report", "Progress",
           "RFError", "UsageError", "BadOption",
           "Conversation", "SampleRequest", "SamplerEngine", "LoadedEngine", "Sampler",
           "Verifier", "Trainer", "Dataset", "DatasetItem", "BadItem", *_LAZY]


def __getattr__(name: str) -> Any:
    if name not in _LAZY:
        raise AttributeError(f"module 'rf_core.api' has no attribute {name!r}")
    value = getattr(importlib.import_module(_LAZY[name]), _RENAMED.get(name, name))
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(__all__)
