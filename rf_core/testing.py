"""Test helpers for plugin authors (and ReasonForge's own tests).

    from rf_core.testing import FakeSampler, registered, run_command, validate_records

    def test_my_verifier(tmp_path):
        sampler = FakeSampler().queue("```sql\\nSELECT 1\\n```")
        with registered(sampler), registered(my_plugin_module):
            sampled = run_command("rf-sample", ["--sampler", "fake", "-m", "none"],
                                  input=[task])
            verified = run_command("rf-exec", ["--verifier", "mine"], input=sampled.stdout)
        assert verified.exit_code == 0, verified.stderr
        tasks = validate_records(verified.stdout, "task", require=("verified_by",))

- ``validate_records`` checks records (or JSONL text) against the record schemas shipped in
  the package, exactly as the commands check what they read.
- ``FakeSampler`` is a sampler that replays queued outputs (like llm's MockModel) and records
  the keyword arguments of every call.
- ``registered(plugin)`` registers a plugin (a module or object with ``@hookimpl`` hooks, or a
  bare sampler, verifier, trainer or dataset object) with ReasonForge's plugin manager for the
  duration of a ``with`` block; commands then find its implementations by name. A plugin
  also installed by its entry point (``pip install -e .``) works too: that copy stands aside
  for the block.
- ``run_command("rf-x", args, input=...)`` runs a command in-process with click's CliRunner,
  stdout (bytes) and stderr kept apart.
- ``build_tiny_model(folder)`` writes a tiny random chat model (2 layers, a BPE tokenizer with
  a ChatML template): the model-using commands run on it in seconds on a CPU, offline.

With ``pytest_plugins = ["rf_core.testing"]`` in a conftest.py, pytest also gets the fixtures
``tiny_model`` (that model's folder, built once per session; the test is skipped where torch
or transformers are missing) and ``fake_sampler`` (a FakeSampler named "fake", registered for
one test).

Importing this module imports neither torch nor transformers (only ``build_tiny_model`` does).
"""

from __future__ import annotations

import contextlib
import importlib
import types
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator

import orjson

from rf_core.plugins.hookspecs import hookimpl
from rf_core.plugins.options import Option

try:
    import pytest
except ImportError:  # the helpers work without pytest; only the fixtures need it
    pytest = None

__all__ = ["validate_records", "FakeSampler", "SampleCall", "registered", "run_command",
           "CommandResult", "build_tiny_model", "CHATML", "CORPUS"]


# -- records ---------------------------------------------------------------------------------

def validate_records(records: Iterable[dict] | str | bytes, kind: str | None = None, *,
                     require: Iterable[str] = ()) -> list[dict]:
    """Check records against the packaged schemas and return them as a list.

    ``records`` is a list of dicts or JSONL text (a command's stdout). With ``kind``, every
    record must be of that kind (task, example, report, train_report); without it, each is
    checked against the schema of its own ``kind``. ``require`` names fields every record
    must have beyond its schema's (``("messages", "candidates")`` for sampled tasks).
    Raises AssertionError naming the record's index and the schema error.
    """
    from rf_core.records.validation import SchemaError, known_kinds, validator

    if isinstance(records, (str, bytes)):
        records = _parse_jsonl(records)
    records = list(records)
    if kind is not None and kind not in known_kinds():
        raise ValueError(f"unknown record kind {kind!r}; known: "
                         f"{', '.join(sorted(known_kinds()))}")
    required = tuple(require)
    for i, rec in enumerate(records):
        where = f"records[{i}]"
        if not isinstance(rec, dict):
            raise AssertionError(f"{where}: expected a JSON object, got {type(rec).__name__}")
        if "id" in rec:
            where += f" (id {rec['id']!r})"
        own = rec.get("kind")
        if kind is not None and own != kind:
            raise AssertionError(f"{where}: expected kind {kind!r}, got {own!r}")
        if own not in known_kinds():
            raise AssertionError(f"{where}: unknown record kind {own!r}")
        try:
            validator(own)(rec)
        except SchemaError as exc:
            raise AssertionError(f"{where}: {own} record invalid: {exc}") from None
        missing = [name for name in required if name not in rec]
        if missing:
            raise AssertionError(f"{where}: missing field(s) {', '.join(missing)}")
    return records


def _parse_jsonl(text: str | bytes) -> list[dict]:
    lines = text.splitlines() if isinstance(text, bytes) else text.encode().splitlines()
    out = []
    for n, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            out.append(orjson.loads(line))
        except orjson.JSONDecodeError as exc:
            raise AssertionError(f"line {n}: invalid JSON: {exc}") from None
    return out


# -- a sampler that replays queued outputs ----------------------------------------------------

@dataclass
class SampleCall:
    """One ``sample`` call of a FakeSampler: the keyword arguments it got and the ids of the
    tasks it answered, in order."""

    kwargs: dict[str, Any]
    task_ids: list[Any] = field(default_factory=list)


def gold_answer(task: dict) -> str:
    """FakeSampler's default answer: the task's gold SQL in a ```sql block (SELECT 1 when it
    has none)."""
    return f"```sql\n{task.get('gold_sql') or 'SELECT 1'}\n```"


class FakeSampler:
    """A deterministic sampler: each candidate's text is the next queued output.

    ``queue(*texts)`` adds outputs for any task, ``queue(*texts, task="id")`` for one task
    (used first). An output is a text, or an answer dict (``{"text", "logprob", "n_tokens",
    "finished", "seed"}``, text required; a candidate's ``seed`` is the answer's, else null,
    as nothing was sampled). When the queues are empty the answer is
    ``default``: a text, or a function of the task (by default ``gold_answer``). Candidates
    are built with ``attach`` and ``task_messages`` as real samplers build them.

    ``calls`` records every call: its keyword arguments and the ids of the tasks it answered.
    ``options`` declares plugin options (``Option``) that rf-sample's ``-o`` then accepts.
    """

    def __init__(self, name: str = "fake", *, default: str | Callable[[dict], str] | None = None,
                 options: Iterable[Option] = ()):
        self.name = name
        self.default = gold_answer if default is None else default
        self.options = tuple(options)
        self.calls: list[SampleCall] = []
        self._queue: deque = deque()
        self._by_task: dict[Any, deque] = {}

    def queue(self, *outputs: str | dict, task: Any = None) -> "FakeSampler":
        """Add outputs to replay, in order; returns the sampler so calls can be chained."""
        target = self._queue if task is None else self._by_task.setdefault(task, deque())
        target.extend(outputs)
        return self

    @property
    def pending(self) -> int:
        """Queued outputs not replayed yet."""
        return len(self._queue) + sum(map(len, self._by_task.values()))

    def _answer(self, task: dict) -> dict:
        own = self._by_task.get(task.get("id"))
        if own:
            output = own.popleft()
        elif self._queue:
            output = self._queue.popleft()
        else:
            output = self.default(task) if callable(self.default) else self.default
        answer = dict(output) if isinstance(output, dict) else {"text": output}
        for key, value in (("logprob", None), ("n_tokens", None), ("finished", True)):
            answer.setdefault(key, value)
        return answer

    def sample(self, tasks: Iterable[dict], **kwargs: Any) -> Iterator[dict]:
        # the call is recorded now, not on the first next(): a command that never iterates
        # still shows what it passed
        call = SampleCall(kwargs=dict(kwargs))
        self.calls.append(call)
        return self._answers(tasks, call)

    def _answers(self, tasks: Iterable[dict], call: SampleCall) -> Iterator[dict]:
        from rf_core.api import attach, task_messages

        kw = call.kwargs
        for task in tasks:
            call.task_ids.append(task.get("id"))
            answers = [self._answer(task) for _ in range(kw.get("k", 1))]
            yield attach(task, task_messages(task), answers, sampler=self.name,
                         model=kw.get("model", "fake"), adapter=kw.get("adapter"),
                         temperature=kw.get("temperature", 0.0), seed=None)
        report = kw.get("report")
        if report is not None:
            report(f"{self.name}: answered {len(call.task_ids)} task(s)")


# -- plugins registered for a test ------------------------------------------------------------

# the method that makes an object an implementation of each kind
_METHODS = {"load": "samplers", "sample": "samplers", "verify": "verifiers",
            "train": "trainers", "items": "datasets", "tasks": "datasets", "match": "matchers"}


def _has_hooks(plugin: Any) -> bool:
    from rf_core.plugins.manager import pm

    return any(pm.parse_hookimpl_opts(plugin, attr) for attr in dir(plugin))


def _registrar(impl: Any) -> Callable:
    def register_impl(register):
        register(impl)
    return register_impl


def _plugin_for(impl: Any) -> Any:
    """A plugin whose hooks register ``impl`` as every kind it implements."""
    kinds = [kind for method, kind in _METHODS.items() if callable(getattr(impl, method, None))]
    if not kinds:
        raise TypeError(f"{impl!r} has no @hookimpl hooks and none of the methods "
                        f"{', '.join(_METHODS)}: it is neither a plugin nor an implementation")
    plugin = types.SimpleNamespace()
    for kind in kinds:
        setattr(plugin, f"register_{kind}", hookimpl(_registrar(impl)))
    return plugin


def _copies(plugin: Any) -> list[tuple[str, Any]]:
    """(name, plugin) of every loaded copy of ``plugin``: the object itself, or for a
    module, a module of the same name (the copy its entry point loaded, perhaps from another
    folder)."""
    from rf_core.plugins.manager import pm

    module = plugin.__name__ if isinstance(plugin, types.ModuleType) else None
    return [(pm.get_name(p), p) for p in pm.get_plugins()
            if p is plugin or (module and isinstance(p, types.ModuleType)
                               and p.__name__ == module)]


@contextlib.contextmanager
def registered(plugin: Any, *, name: str | None = None) -> Iterator[Any]:
    """Register ``plugin`` with ReasonForge's plugin manager for the ``with`` block, as an
    installed plugin would be, and unregister it afterwards (also when the block fails).

    ``plugin`` is a module or object with ``@hookimpl`` hooks, or a bare implementation (an
    object with ``name`` and ``sample``, ``verify``, ``train``, ``items`` or ``tasks``), which is
    registered under its kind's hook. Commands run in this process then find it by name.
    Yields ``plugin``.

    A plugin that is also installed (``pip install -e .`` while developing it) is loaded by
    its entry point too: that copy (the same module, or a module of the same name) stands
    aside for the block and is registered again afterwards, so the block runs the ``plugin``
    given here and no name is registered twice. No ``RF_LOAD_PLUGINS`` setting is needed.
    """
    from rf_core.plugins import manager

    manager.load_plugins()
    if _has_hooks(plugin):
        target = plugin
    else:
        target = _plugin_for(plugin)
        name = name or f"testing:{getattr(plugin, 'name', type(plugin).__name__)}"
    aside = _copies(target)
    for _, copy in aside:
        manager.pm.unregister(copy)
    try:
        manager.pm.register(target, name=name)
    except BaseException:
        _restore(aside)
        raise
    manager.invalidate()
    try:
        yield plugin
    finally:
        manager.pm.unregister(target)
        _restore(aside)


def _restore(aside: list[tuple[str, Any]]) -> None:
    from rf_core.plugins import manager

    for copy_name, copy in aside:
        manager.pm.register(copy, name=copy_name)
    manager.invalidate()


# -- running commands in-process --------------------------------------------------------------

@dataclass
class CommandResult:
    """What a command run by ``run_command`` left: its exit code, stdout as bytes (the JSONL
    it wrote), stderr as text, and any exception it did not turn into an exit code."""

    exit_code: int
    stdout: bytes
    stderr: str
    exception: BaseException | None = None

    @property
    def records(self) -> list[dict]:
        """stdout's records (not validated: see ``validate_records``)."""
        return _parse_jsonl(self.stdout)


def command(prog: str) -> Any:
    """The click command of ``prog`` (``"rf-sample"``, ``"rf-exec"``, ...)."""
    if not prog.startswith("rf-"):
        raise ValueError(f"not a ReasonForge command: {prog!r}")
    try:
        module = importlib.import_module(f"rf_core.commands.{prog[3:]}")
    except ModuleNotFoundError:
        raise ValueError(f"no command {prog!r}") from None
    return module.cli


def run_command(prog: str, args: Iterable[str] = (),
                input: bytes | str | Iterable[dict] | None = None,
                env: dict[str, str] | None = None) -> CommandResult:
    """Run command ``prog`` in this process (so plugins ``registered`` here are seen) with
    ``args``; ``input`` is stdin as bytes or text, or records to write to it as JSONL.
    Exceptions that the command does not handle propagate."""
    from click.testing import CliRunner

    if input is not None and not isinstance(input, (bytes, str)):
        input = b"".join(orjson.dumps(rec) + b"\n" for rec in input)
    try:
        runner = CliRunner(mix_stderr=False)  # click 8.1
    except TypeError:
        runner = CliRunner()  # click 8.2 on keeps stderr apart
    result = runner.invoke(command(prog), [str(a) for a in args], input=input, env=env,
                           catch_exceptions=False, prog_name=prog)
    return CommandResult(result.exit_code, result.stdout_bytes, result.stderr,
                         result.exception)


# -- a tiny model, built at test time ---------------------------------------------------------

CHATML = (
    "{% for message in messages %}{{ '<|im_start|>' + message['role'] + '\\n' + "
    "message['content'] + '<|im_end|>' + '\\n' }}{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}"
)

# what the tokenizer is trained on: the prompt's words and some SQL
CORPUS = [
    "SELECT name FROM product WHERE price > 1", "SELECT count(*) FROM customer",
    "You are an expert in SQLite. Given a database schema and a question, write one SQLite "
    "query that answers the question. Reply with the SQL query only, in a ```sql code block.",
    "Database schema: CREATE TABLE product (id INTEGER PRIMARY KEY, name TEXT, price REAL)",
    "Question: How many customers are there? Which products cost more than one euro?",
    "```sql\nSELECT avg(price) FROM product GROUP BY category HAVING count(*) > 2\n```",
    "SELECT T1.name FROM customer AS T1 JOIN orders AS T2 ON T1.id = T2.customer_id",
    "e.g. 'fruit', 'bakery', 1, 2, 3 -- ORDER BY LIMIT DESC ASC INTERSECT UNION EXCEPT",
]


def build_tiny_model(folder: Path | str, seed: int = 0, arch: str = "qwen2") -> Path:
    """Write a tiny random chat model into ``folder`` and return it: a 400-token byte-level
    BPE tokenizer with a ChatML template and a 2-layer Qwen2 model (``arch="llama"``: a Llama
    with head_dim 64, which vLLM's CPU attention supports). No network, no hub."""
    import torch
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import (LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast,
                              Qwen2Config, Qwen2ForCausalLM)

    folder = Path(folder)
    specials = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]
    tk = Tokenizer(models.BPE(unk_token=None))
    tk.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tk.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=400, special_tokens=specials,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    tk.train_from_iterator(CORPUS * 4, trainer)
    tok = PreTrainedTokenizerFast(tokenizer_object=tk, eos_token="<|im_end|>",
                                  pad_token="<|endoftext|>", chat_template=CHATML)
    # the qwen2 model has grouped KV heads (4 query heads over 2); the llama one has vLLM's
    # CPU attention's head size (64)
    shapes = {"qwen2": (Qwen2Config, Qwen2ForCausalLM,
                        {"hidden_size": 64, "intermediate_size": 128, "num_attention_heads": 4}),
              "llama": (LlamaConfig, LlamaForCausalLM,
                        {"hidden_size": 128, "intermediate_size": 256,
                         "num_attention_heads": 2})}
    if arch not in shapes:
        raise ValueError(f"arch must be 'qwen2' or 'llama', got {arch!r}")
    config_class, model_class, shape = shapes[arch]
    torch.manual_seed(seed)
    # a wide initialisation, so that LoRA on the linear layers can move the logits far enough
    # to memorise a few completions (at 0.02 the frozen output layer keeps them near uniform)
    config = config_class(vocab_size=len(tok), num_hidden_layers=2, num_key_value_heads=2,
                          max_position_embeddings=4096, tie_word_embeddings=False,
                          eos_token_id=tok.eos_token_id, pad_token_id=tok.pad_token_id,
                          bos_token_id=None, initializer_range=0.3, **shape)
    model = model_class(config)
    folder.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(folder)
    tok.save_pretrained(folder)
    return folder


# -- pytest fixtures (pytest_plugins = ["rf_core.testing"]) -----------------------------------

if pytest is not None:
    @pytest.fixture(scope="session")
    def tiny_model(tmp_path_factory) -> str:
        """The folder of a tiny random Qwen2 chat model, built once per test session."""
        for module in ("torch", "transformers", "tokenizers"):
            try:
                importlib.import_module(module)
            except ImportError:
                pytest.skip(f"{module} is not installed (pip install 'reasonforge[models]')")
        return str(build_tiny_model(tmp_path_factory.mktemp("tiny") / "model"))

    @pytest.fixture
    def fake_sampler() -> Iterator[FakeSampler]:
        """A FakeSampler named "fake", registered for one test (rf-sample --sampler fake)."""
        with registered(FakeSampler()) as sampler:
            yield sampler
