"""The plugin manager: built-in plugins and third-party ones are loaded the same way.

Built-ins are listed by module name in DEFAULT_PLUGINS and registered exactly as a
third-party plugin is. Third-party plugins come from the ``reasonforge`` entry-point group.
``RF_LOAD_PLUGINS`` restricts which of those load: unset loads all, "" loads none (built-ins
only), "a,b" loads the plugins named a and b (entry-point, distribution or module names).
A plugin that fails to import is reported once and skipped.

Implementations are chosen by name; pluggy's ``firstresult`` is never used, because it calls
the last-registered plugin first and would let built-ins shadow third-party plugins.
"""

from __future__ import annotations

import importlib
import importlib.metadata
import os
import sys
from typing import Any

import pluggy

from rf_core.plugins import hookspecs
from rf_core.plugins.options import declared
from rf_core.errors import RFError, UnknownPlugin

DEFAULT_PLUGINS = (
    "rf_plugins.datasets",
    "rf_plugins.sqlite_verifier",
    "rf_plugins.matchers",
    "rf_plugins.hf",
    "rf_plugins.vllm",
    "rf_plugins.openai_sampler",
    "rf_plugins.replay_sampler",
    "rf_core.plugins.auto",
    "rf_plugins.peft",
    "rf_plugins.dpo",
)

KINDS = ("samplers", "verifiers", "trainers", "datasets", "matchers")

pm = pluggy.PluginManager("reasonforge")
pm.add_hookspecs(hookspecs)

_loaded = False
_registries: dict[str, dict[str, tuple[str, Any]]] = {}
_dists: dict[str, dict[str, str]] = {}
failed: dict[str, str] = {}  # entry-point name -> why it did not load


def load_filter() -> set[str] | None:
    """The names in ``RF_LOAD_PLUGINS`` (None when unset: load every plugin)."""
    wanted = os.environ.get("RF_LOAD_PLUGINS")
    if wanted is None:
        return None
    return {n.strip() for n in wanted.split(",") if n.strip()}


def _module_of(ep: importlib.metadata.EntryPoint) -> str:
    return ep.value.split(":")[0].strip()


def _selected_entry_points() -> list[importlib.metadata.EntryPoint]:
    """Entry points of the ``reasonforge`` group that RF_LOAD_PLUGINS lets through; it may
    name an entry point, a distribution or a module (``reasonforge_x``)."""
    eps = list(importlib.metadata.entry_points(group="reasonforge"))
    names = load_filter()
    if names is None:
        return eps

    def aliases(ep):
        found = {ep.name, _module_of(ep), _module_of(ep).split(".")[0]}
        if ep.dist is not None:
            found.add(ep.dist.name)
            found.add(ep.dist.name.replace("-", "_"))
        return found

    chosen = [ep for ep in eps if aliases(ep) & names]
    known = set().union(*(aliases(ep) for ep in chosen)) if chosen else set()
    for missing in sorted(names - known):
        print(f"Warning: RF_LOAD_PLUGINS names {missing!r}, which is not installed "
              "(entry-point, distribution and module names are accepted)", file=sys.stderr)
    return chosen


def load_plugins() -> pluggy.PluginManager:
    """Load third-party and built-in plugins once; later calls return at once.

    A plugin that fails to import is reported once on stderr and skipped; its error is kept
    in ``failed`` so that asking for a name it might provide says why it is missing.
    """
    global _loaded
    if _loaded:
        return pm
    _loaded = True
    for ep in _selected_entry_points():
        if pm.get_plugin(ep.name) is not None or pm.is_blocked(ep.name):
            continue
        try:
            plugin = ep.load()
        except Exception as exc:  # noqa: BLE001 - a broken plugin must not break the others
            failed[ep.name] = f"{type(exc).__name__}: {exc}"
            print(f"Warning: plugin {ep.name!r} failed to load and is skipped: "
                  f"{failed[ep.name]}", file=sys.stderr)
            continue
        pm.register(plugin, name=ep.name)
        if ep.dist is not None:
            _dists[ep.name] = {"distribution": ep.dist.name, "version": ep.dist.version}
    for module_name in DEFAULT_PLUGINS:
        if pm.get_plugin(module_name) is None:
            pm.register(importlib.import_module(module_name), name=module_name)
    pm.check_pending()
    return pm


def invalidate() -> None:
    """Forget the built registries (after registering or unregistering a plugin by hand)."""
    _registries.clear()


def registry(kind: str) -> dict[str, tuple[str, Any]]:
    """name -> (plugin name, implementation) for one kind of implementation.

    Two plugins registering one name is an error naming both.
    """
    if kind not in KINDS:
        raise ValueError(f"unknown plugin kind {kind!r}")
    if kind in _registries:
        return _registries[kind]
    load_plugins()
    found: dict[str, tuple[str, Any]] = {}
    caller = getattr(pm.hook, f"register_{kind}")
    for impl in reversed(caller.get_hookimpls()):  # registration order
        plugin_name = impl.plugin_name

        def register(obj, name=None, _plugin=plugin_name):
            key = name or getattr(obj, "name", None)
            if not key:
                raise RFError(f"plugin {_plugin!r} registered a {kind[:-1]} without a name")
            if key in found:
                raise RFError(f"{kind[:-1]} {key!r} is registered by both "
                              f"{found[key][0]!r} and {_plugin!r}")
            found[key] = (_plugin, obj)

        args = {"register": register}
        impl.function(**{a: args[a] for a in impl.argnames if a in args})
    _registries[kind] = found
    return found


def get(kind: str, name: str) -> Any:
    """The implementation of ``kind`` called ``name``; UnknownPlugin lists the installed ones."""
    reg = registry(kind)
    if name not in reg and name in failed:
        raise RFError(f"{kind[:-1]} {name!r}: plugin {name!r} failed to load: {failed[name]}")
    if name not in reg:
        notes = []
        if failed:
            notes.append("plugin(s) that failed to load: " + "; ".join(
                f"{n} ({why})" for n, why in sorted(failed.items())))
        wanted = load_filter()
        if wanted is not None:
            notes.append("RF_LOAD_PLUGINS=" + ",".join(sorted(wanted))
                         + " limits which plugins load")
        raise UnknownPlugin(kind[:-1], name, list(reg), notes)
    return reg[name][1]


def splits_of(impl: Any) -> list[str] | None:
    """The split names a dataset declares (its ``splits``), or None when it declares none."""
    splits = getattr(impl, "splits", None)
    if splits is None or isinstance(splits, str):
        return None
    try:
        return [str(s) for s in splits]
    except TypeError:
        return None


def describe_impl(kind: str, impl: Any) -> str:
    """One line about an implementation: its description, and a dataset's splits."""
    text = str(getattr(impl, "description", "") or "").strip()
    splits = splits_of(impl) if kind == "datasets" else None
    if splits:
        text = (text + "; " if text else "") + "splits: " + ", ".join(splits)
    return text or "-"


def describe() -> dict:
    """What is installed: every plugin with its hooks and registered names, as plain data."""
    load_plugins()
    per_plugin: dict[str, dict[str, list[str]]] = {}
    options: dict[str, dict[str, list[dict]]] = {}
    for kind in KINDS:
        for name, (plugin_name, impl) in registry(kind).items():
            per_plugin.setdefault(plugin_name, {}).setdefault(kind, []).append(name)
            options.setdefault(kind, {})[name] = [o.describe() for o in declared(impl)]
    plugins = []
    for plugin in pm.get_plugins():
        name = pm.get_name(plugin)
        entry = {
            "name": name,
            "builtin": name in DEFAULT_PLUGINS,
            "hooks": sorted(h.name for h in pm.get_hookcallers(plugin) or []),
            "registers": per_plugin.get(name, {}),
        }
        entry.update(_dists.get(name, {}))
        plugins.append(entry)
    plugins.sort(key=lambda p: (p["builtin"], p["name"]))
    return {
        "plugins": plugins,
        **{kind: sorted(registry(kind)) for kind in KINDS},
        "options": options,
        "splits": {name: splits_of(impl) for name, (_, impl) in registry("datasets").items()
                   if splits_of(impl) is not None},
        "failed": dict(sorted(failed.items())),
    }
