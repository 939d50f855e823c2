"""The auto sampler, rf-sample's default: it picks the engine for this machine and hands the
run to it.

Engines describe themselves (``rf_core.api.SamplerEngine``): a ``priority``, a ``rule`` in
words and ``available()``. auto tries the installed engines, from any plugin, from the highest
priority down and takes the first available one; the rule's text (rf-sample's help, rf-doctor)
is built from the same declarations. The choice and why go to stderr in one line
(``rf-sample: sampler auto -> hf (no CUDA GPU)``), and the candidates name the engine that
wrote them (``"sampler": "hf"``), never "auto".

Options: auto declares every option of the engines it may pick, with no default of its own,
so ``-o`` is checked as usual; an option the picked engine does not have is a usage error
(exit 2) that names the engine and its options. The engine's own defaults fill in the rest.

auto lives in rf_core because it looks the engines up in the plugin registry.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any, Callable, Iterable, Iterator

from rf_core.errors import RFError, UsageError
from rf_core.model import sampling
from rf_core.plugins.hookspecs import hookimpl
from rf_core.plugins.options import declared
from rf_core.records.io import to_stderr


def engines() -> list[Any]:
    """The engines auto considers, highest priority first."""
    from rf_core.plugins import manager

    return sampling.auto_order(impl for _, impl in manager.registry("samplers").values())


def rule() -> str:
    """auto's rule in words, from the installed engines' declarations."""
    return sampling.auto_rule(engines())


def probe() -> tuple[str, str]:
    """(engine, why) on this machine."""
    return sampling.auto_pick(engines())


def _checked(engine: str, why: str, impl: Any, given: dict) -> dict:
    """``given`` (auto's -o options that were set) checked against the picked engine's."""
    theirs = {o.name: o for o in declared(impl)}
    for key, value in given.items():
        if key not in theirs:
            raise UsageError(
                f"sampler {engine!r} (picked by auto: {why}) has no option {key!r}; its "
                f"options: {', '.join(theirs) or 'none'} (or choose one with --sampler)")
        try:  # the engine's own limits, where they are narrower than another engine's
            theirs[key].convert(str(value))
        except ValueError as exc:
            raise UsageError(f"option {key!r} of sampler {engine!r}: {exc}") from None
    return {name: opt.default for name, opt in theirs.items()} | given


class AutoSampler:
    """Picks the first available engine by priority and runs the sample with it."""

    name = "auto"

    @property
    def description(self) -> str:
        """What auto does, with the rule."""
        return f"picks {rule()}; says which on stderr and passes -o options to it"

    @property
    def options(self) -> tuple:
        """Every engine's options once, tagged with the engines that take them."""
        found: dict[str, tuple[Any, list[str]]] = {}
        for engine in engines():
            for opt in declared(engine):
                found.setdefault(opt.name, (opt, []))[1].append(engine.name)
        return tuple(replace(opt, default=None, help=f"[{', '.join(names)}] {opt.help}")
                     for opt, names in found.values())

    @staticmethod
    def choose() -> tuple[str, str]:
        """(engine, why) on this machine."""
        return probe()

    def engine_for(self, kwargs: dict, report: Callable[[str], None]) -> tuple[Any, dict]:
        """(engine, keyword arguments for it): the picked engine (said on ``report``) and
        ``kwargs`` with auto's options checked against the engine's own."""
        from rf_core.plugins import manager

        engine, why = self.choose()
        report(f"sampler auto -> {engine} ({why})")
        try:
            impl = manager.get("samplers", engine)
        except RFError as exc:
            raise UsageError(f"sampler auto picked {engine!r}: {exc}") from None
        mine = {o.name for o in self.options}
        given = {key: value for key, value in kwargs.items()
                 if key in mine and value is not None}
        common = {key: value for key, value in kwargs.items() if key not in mine}
        return impl, {**common, **_checked(engine, why, impl, given)}

    def sample(self, tasks: Iterable[dict], *, report: Callable[[str], None] = to_stderr,
               **kwargs: Any) -> Iterator[dict]:
        """Say the choice, check the options against the engine's, and run it."""
        impl, arguments = self.engine_for(kwargs, report)
        yield from sampling.sample_tasks(impl, tasks, report=report, **arguments)


@hookimpl
def register_samplers(register):
    """auto, rf-sample's default sampler."""
    register(AutoSampler())
