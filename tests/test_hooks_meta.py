"""Meta-test (datasette's recipe): every hook in rf_core/plugins/hookspecs.py is exercised
through the command that uses it. A small plugin implementing just that hook is registered,
the real command runs in-process, and the test checks that the implementation got exactly the
keyword arguments its Protocol in rf_core/api.py documents (with the documented types), and
that the command's output validates against the record schemas.

Adding a hook without adding it to COMMAND_OF fails here."""

from __future__ import annotations

import collections.abc
import inspect
import types
import typing
from pathlib import Path

import pytest

from rf_core import api
from rf_core.api import Option, hookimpl
from rf_core.exec.sqlite import Limits
from rf_core.plugins import hookspecs
from rf_core.plugins import manager as plugins
from rf_core.testing import FakeSampler, registered, run_command, validate_records
from conftest import make_task

# hook -> (the command that uses it, the Protocol of what it registers, its method)
COMMAND_OF = {
    "register_samplers": ("rf-sample", api.Sampler, "sample"),
    "register_verifiers": ("rf-exec", api.Verifier, "verify"),
    "register_trainers": ("rf-train", api.Trainer, "train"),
    "register_datasets": ("rf-data", api.Dataset, "items"),
    "register_matchers": ("rf-exec", api.Matcher, "match"),
}
# hooks whose implementations take records and keyword arguments (a matcher compares rows)
RECORD_HOOKS = sorted(set(COMMAND_OF) - {"register_matchers"})

# every fake declares one option, given on the command line, to show options arrive too
FLAVOUR = (Option("flavour", str, "plain", "A plugin option."),)
OPTION_ARGS = ["-o", "flavour", "salty"]


def hook_names() -> list[str]:
    marker = f"{hookspecs.hookspec.project_name}_spec"
    return sorted(n for n, f in vars(hookspecs).items() if hasattr(f, marker))


def test_every_hook_has_a_command_test():
    assert hook_names() == sorted(COMMAND_OF), (
        "every hook needs an entry in COMMAND_OF (the command that exercises it)")
    assert sorted(h.name for h in plugins.pm.hook.__dict__.values()
                  if hasattr(h, "get_hookimpls")) == hook_names()


def documented(protocol: type, method: str) -> dict[str, object]:
    """The keyword-only parameters of a Protocol method, with their resolved types."""
    fn = getattr(protocol, method)
    hints = typing.get_type_hints(fn, globalns=vars(api), localns={"Limits": Limits})
    return {name: hints[name] for name, p in inspect.signature(fn).parameters.items()
            if p.kind is inspect.Parameter.KEYWORD_ONLY}


def conforms(value, hint) -> bool:
    """Whether ``value`` has the documented type ``hint`` (as far as the hint allows)."""
    origin = typing.get_origin(hint)
    if origin in (typing.Union, types.UnionType):
        return any(conforms(value, h) for h in typing.get_args(hint))
    if origin is collections.abc.Callable or hint is api.Report:
        return callable(value)
    if hint is api.Progress:
        return callable(getattr(value, "start", None)) and callable(
            getattr(value, "update", None))
    if hint is type(None):
        return value is None
    if hint is float:
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    if hint is int:
        return isinstance(value, int) and not isinstance(value, bool)
    return isinstance(value, origin or hint)


def plugin_implementing(hook: str, impl):
    """A plugin with one hook, ``hook``, that registers ``impl``: what a third party writes."""
    def register_it(register):
        register(impl)
    register_it.__name__ = hook
    return types.SimpleNamespace(**{hook: hookimpl(register_it)})


class Recorder:
    """Keeps the keyword arguments of every call."""

    options = FLAVOUR

    def __init__(self):
        self.calls: list[dict] = []


class MetaVerifier(Recorder):
    name = "meta-verifier"

    def verify(self, tasks, **kwargs):
        self.calls.append(kwargs)
        return self._verify(tasks, kwargs["matcher"])

    def _verify(self, tasks, matcher):
        for task in tasks:
            for cand in task.get("candidates") or []:
                cand["correct"] = cand.get("sql") == task.get("gold_sql")
            task["verified_by"] = {"verifier": self.name, "matcher": matcher}
            yield task


class MetaTrainer(Recorder):
    name = "meta-trainer"

    def train(self, examples, **kwargs):
        self.calls.append(kwargs)
        out = Path(kwargs["out"])
        out.mkdir(parents=True, exist_ok=True)
        (out / "adapter.txt").write_text(f"{len(examples)} example(s)\n")
        return {"path": str(out), "base": kwargs["base"], "trainer": self.name,
                "examples": len(examples), "tokens": 0, "steps": 1, "skipped_steps": 0,
                "loss_curve": [0.5], "wall_s": 0.0, "tokens_per_s": 0.0}


class MetaDataset(Recorder):
    name = "meta-data"

    def __init__(self, db_path: str):
        super().__init__()
        self.db_path = db_path

    def items(self, **kwargs):
        self.calls.append(kwargs)
        return self._items(kwargs["split"])

    def _items(self, split):
        for i in range(3):
            yield api.DatasetItem(id=f"meta/{split}/{i}", db_id="shop", db_path=self.db_path,
                                  question=f"Question {i}?", gold_sql="SELECT 1", split=split)


class MetaSampler(FakeSampler):
    """FakeSampler, with its calls' keyword arguments where the other fakes keep them."""

    @property
    def kwargs_seen(self) -> list[dict]:
        return [c.kwargs for c in self.calls]


def example(i: int) -> dict:
    return {"schema_version": 1, "kind": "example", "task_id": f"t/{i}", "db_id": "shop",
            "messages": [{"role": "user", "content": f"question {i}"}],
            "completion": "```sql\nSELECT 1\n```", "source": "self", "weight": 1.0}


def scenario(hook: str, shop_db: str, tmp_path: Path):
    """(implementation, command arguments, stdin, output kind, fields the output must have)."""
    if hook == "register_samplers":
        impl = MetaSampler("meta-sampler", options=FLAVOUR)
        tasks = [make_task(shop_db, "SELECT 1", None, id=f"t/{i}") for i in range(2)]
        return (impl, ["--sampler", impl.name, "-m", "no-model", "-k", "2", "-t", "0.7"],
                tasks, "task", ("messages", "candidates"))
    if hook == "register_verifiers":
        impl = MetaVerifier()
        tasks = [make_task(shop_db, "SELECT 1", ["SELECT 1", "SELECT 2"], id="t/0")]
        return impl, ["--verifier", impl.name, "-j", "1"], tasks, "task", ("verified_by",)
    if hook == "register_trainers":
        impl = MetaTrainer()
        return (impl, ["--trainer", impl.name, "--base", "no-model",
                       "--out", str(tmp_path / "adapter"), "--epochs", "1"],
                [example(0), example(1)], "train_report", ())
    if hook == "register_datasets":
        impl = MetaDataset(shop_db)
        return impl, [impl.name, "--split", "dev", "--limit", "2"], None, "task", ("db_path",)
    raise AssertionError(f"no scenario for {hook}")


@pytest.mark.parametrize("hook", RECORD_HOOKS)
def test_hook_through_its_command(hook, shop_db, tmp_path, validate):
    prog, protocol, method = COMMAND_OF[hook]
    impl, args, stdin, kind, require = scenario(hook, shop_db, tmp_path)
    assert isinstance(impl, protocol), f"the fake for {hook} is not a {protocol.__name__}"
    plugin = plugin_implementing(hook, impl)
    with registered(plugin, name=f"meta-{hook}"):
        assert [h.name for h in plugins.pm.get_hookcallers(plugin)] == [hook]
        result = run_command(prog, [*args, *OPTION_ARGS], input=stdin)
    assert result.exit_code == 0, result.stderr
    seen = impl.kwargs_seen if isinstance(impl, MetaSampler) else impl.calls
    assert len(seen) == 1, f"{prog} called {method} {len(seen)} times"
    kwargs = seen[0]

    expected = documented(protocol, method)
    assert set(kwargs) - {"flavour"} == set(expected), (
        f"{prog} passes {sorted(set(kwargs) - {'flavour'})} to {method}, but "
        f"api.{protocol.__name__}.{method} documents {sorted(expected)}")
    for name, hint in expected.items():
        assert conforms(kwargs[name], hint), (
            f"{prog} passes {name}={kwargs[name]!r}, documented as {hint}")
    assert kwargs["flavour"] == "salty"

    records = validate_records(result.stdout, kind, require=require)
    assert records, f"{prog} wrote nothing"
    validate(records)  # and independently, with jsonschema
    if hook == "register_trainers":
        assert (tmp_path / "adapter" / "adapter.txt").read_text() == "2 example(s)\n"


def test_matcher_hook_through_rf_exec(shop_db, validate):
    """A matcher registered by a plugin is selectable by ``rf-exec --matcher``, judges every
    candidate (its verdict in ``verdicts``) and gets rows as lists of tuples and a bool."""

    def match(gold, pred, ordered):  # runs in rf-exec's worker: the verdict carries the check
        return isinstance(ordered, bool) and all(isinstance(r, tuple) for r in [*gold, *pred])

    impl = api.Matcher("meta-matcher", match, description="Right when the types are.")
    assert isinstance(impl, COMMAND_OF["register_matchers"][1])
    plugin = plugin_implementing("register_matchers", impl)
    task = make_task(shop_db, "SELECT 1", ["SELECT 2", None], id="t/0")
    with registered(plugin, name="meta-register_matchers"):
        assert [h.name for h in plugins.pm.get_hookcallers(plugin)] == ["register_matchers"]
        assert plugins.get("matchers", "meta-matcher") is impl
        result = run_command("rf-exec", ["--matcher", "meta-matcher", "-j", "1"], input=[task])
    assert result.exit_code == 0, result.stderr
    records = validate_records(result.stdout, "task", require=("verified_by",))
    validate(records)
    assert records[0]["verified_by"]["matcher"] == "meta-matcher"
    right, no_sql = records[0]["candidates"]
    assert right["correct"] is True and right["verdicts"]["meta-matcher"] is True
    assert right["verdicts"]["official"] is False
    assert no_sql["correct"] is False
