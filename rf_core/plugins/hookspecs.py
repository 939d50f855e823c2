"""Plugin hooks. Each hook is a registry: implementations call ``register(impl)``.

Hooks may gain arguments (implementations may accept fewer); they are never renamed or removed.
"""

from pluggy import HookimplMarker, HookspecMarker

hookspec = HookspecMarker("reasonforge")
hookimpl = HookimplMarker("reasonforge")


@hookspec
def register_samplers(register):
    """Register samplers: engines (``name``, ``load(request, **options)`` returning an object
    with ``generate(conversations, first=...)``; see ``rf_core.api.SamplerEngine``), or, kept
    one release as an escape hatch, record-level samplers with ``sample(tasks, **options)``."""


@hookspec
def register_verifiers(register):
    """Register verifiers: objects with ``name`` and ``verify(tasks, **options)``."""


@hookspec
def register_trainers(register):
    """Register trainers: objects with ``name`` and ``train(examples, **options)``."""


@hookspec
def register_datasets(register):
    """Register datasets: objects with ``name`` and ``items(**options)`` yielding items."""


@hookspec
def register_matchers(register):
    """Register matchers: objects with ``name``, ``description`` and ``match(gold_rows,
    pred_rows, ordered)`` (optionally ``rewrite(sql, role)`` and ``ordered(gold_sql)``)."""
