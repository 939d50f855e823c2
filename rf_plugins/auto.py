"""The auto sampler, rf-sample's default: it picks the engine for this machine and hands the
run to it.

The rule (``rf_core.model.environment.AUTO_RULE``, implemented once by ``auto_choice``): vllm
where vLLM is installed and a CUDA GPU is present, else cb (transformers' continuous batching)
on a CUDA GPU where transformers finds a flash attention for it, else hf. Without flash
attention, continuous batching runs paged|sdpa: the step's requests share one sequence under a
block-diagonal mask, so each query scores every request's keys (quadratic in the batch), with
CUDA graphs off; the hf engine is the faster one there. The choice and why go to stderr in one
line (``rf-sample: sampler auto -> hf (no CUDA GPU)``), and the candidates name the engine that
wrote them (``"sampler": "hf"``), never "auto".

Options: auto declares every option of the engines it may pick, with no default of its own,
so ``-o`` is checked as usual; an option the picked engine does not have is a usage error
(exit 2) that names the engine and its options. The engine's own defaults fill in the rest.

Unlike the other built-ins, auto reaches into rf_core beyond ``rf_core.api``: it looks the
engines up in the plugin registry and asks rf_core's environment survey for the choice.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any, Callable, Iterable, Iterator

from rf_core.api import hookimpl, to_stderr
from rf_core.model.environment import AUTO_RULE

ENGINES = ("vllm", "cb", "hf")


def _engine(name: str):
    from rf_core.plugins import manager

    return manager.get("samplers", name)


def _declared(impl) -> tuple:
    from rf_core.plugins.options import declared

    return declared(impl)


class AutoSampler:
    name = "auto"
    description = f"picks {AUTO_RULE}; says which on stderr and passes -o options to it"

    @property
    def options(self) -> tuple:
        """Every engine's options once, tagged with the engines that take them."""
        from rf_core.api import RFError

        found: dict[str, tuple[Any, list[str]]] = {}
        for engine in ENGINES:
            try:
                impl = _engine(engine)
            except RFError:  # not installed, or its plugin failed to load
                continue
            for opt in _declared(impl):
                found.setdefault(opt.name, (opt, []))[1].append(engine)
        return tuple(replace(opt, default=None, help=f"[{', '.join(engines)}] {opt.help}")
                     for opt, engines in found.values())

    @staticmethod
    def choose() -> tuple[str, str]:
        """(engine, why) on this machine."""
        from rf_core.model.environment import probe_auto_choice

        return probe_auto_choice()

    def sample(self, tasks: Iterable[dict], *, report: Callable[[str], None] = to_stderr,
               **kwargs: Any) -> Iterator[dict]:
        import click

        engine, why = self.choose()
        report(f"sampler auto -> {engine} ({why})")
        impl = _engine(engine)
        mine = {o.name for o in self.options}
        theirs = {o.name: o for o in _declared(impl)}
        given = {key: value for key, value in kwargs.items()
                 if key in mine and value is not None}
        for key, value in given.items():
            if key not in theirs:
                raise click.UsageError(
                    f"sampler {engine!r} (picked by auto: {why}) has no option {key!r}; its "
                    f"options: {', '.join(theirs) or 'none'} (or choose one with --sampler)")
            try:  # the engine's own limits, where they are narrower than another engine's
                theirs[key].convert(str(value))
            except ValueError as exc:
                raise click.UsageError(f"option {key!r} of sampler {engine!r}: {exc}") from None
        common = {key: value for key, value in kwargs.items() if key not in mine}
        options = {name: opt.default for name, opt in theirs.items()} | given
        yield from impl.sample(tasks, report=report, **common, **options)


@hookimpl
def register_samplers(register):
    register(AutoSampler())
