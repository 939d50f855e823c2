"""The plugin manager: built-in plugins and third-party ones are loaded the same way.

Built-ins are listed by module name in DEFAULT_PLUGINS and registered exactly as a
third-party plugin is. Third-party plugins come from the ``reasonforge`` entry-point group.
``RF_LOAD_PLUGINS`` restricts which of those load: unset loads all, "" loads none (built-ins
only), "a,b" loads the entry points (or distributions) named a and b.

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
from rf_core.errors import RFError, UnknownPlugin

DEFAULT_PLUGINS = (
    "rf_plugins.datasets",
    "rf_plugins.sqlite_verifier",
    "rf_plugins.hf",
    "rf_plugins.vllm",
    "rf_plugins.peft_trainer",
)

KINDS = ("samplers", "verifiers", "trainers", "datasets")

pm = pluggy.PluginManager("reasonforge")
pm.add_hookspecs(hookspecs)

_loaded = False
_registries: dict[str, dict[str, tuple[str, Any]]] = {}
_dists: dict[str, dict[str, str]] = {}


def _selected_entry_points() -> list[importlib.metadata.EntryPoint]:
    eps = list(importlib.metadata.entry_points(group="reasonforge"))
    wanted = os.environ.get("RF_LOAD_PLUGINS")
    if wanted is None:
        return eps
    names = {n.strip() for n in wanted.split(",") if n.strip()}
    chosen = [ep for ep in eps if ep.name in names or (ep.dist and ep.dist.name in names)]
    found = {ep.name for ep in chosen} | {ep.dist.name for ep in chosen if ep.dist}
    for missing in sorted(names - found):
        print(f"Warning: RF_LOAD_PLUGINS names {missing!r}, which is not installed",
              file=sys.stderr)
    return chosen


def load_plugins() -> pluggy.PluginManager:
    """Load third-party and built-in plugins once; later calls return at once."""
    global _loaded
    if _loaded:
        return pm
    _loaded = True
    for ep in _selected_entry_points():
        if pm.get_plugin(ep.name) is not None or pm.is_blocked(ep.name):
            continue
        try:
            plugin = ep.load()
        except Exception as exc:  # a broken plugin must say which one it is
            raise RFError(f"plugin {ep.name!r} failed to load: {exc}") from exc
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
    if name not in reg:
        raise UnknownPlugin(kind[:-1], name, list(reg))
    return reg[name][1]


def describe() -> dict:
    """What is installed: every plugin with its hooks and registered names, as plain data."""
    load_plugins()
    per_plugin: dict[str, dict[str, list[str]]] = {}
    for kind in KINDS:
        for name, (plugin_name, _) in registry(kind).items():
            per_plugin.setdefault(plugin_name, {}).setdefault(kind, []).append(name)
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
    }
