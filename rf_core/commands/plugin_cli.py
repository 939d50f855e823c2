"""The command line of a command that runs a plugin chosen by ``--<kind>``: the command class
(its ``--help`` lists the installed plugins and the chosen one's options), ``-o NAME VALUE`` /
``--option NAME=VALUE``, and their values checked against what the plugin declares."""

from __future__ import annotations

from typing import Any, Callable

import click

from rf_core.errors import RFError, UsageError


def _peek(args: list[str], flag: str) -> str | None:
    """The value of ``flag`` in raw command-line ``args`` (for --help before parsing)."""
    if not flag.startswith("-"):  # a positional argument: the first non-option word
        return next((a for a in args if not a.startswith("-")), None)
    for i, arg in enumerate(args):
        if arg == flag and i + 1 < len(args):
            return args[i + 1]
        if arg.startswith(flag + "="):
            return arg.split("=", 1)[1]
    return None


class PluginCommand(click.Command):
    """A command that runs a plugin chosen by ``--<kind>``: its ``--help`` ends with the
    chosen plugin's own options (``-o NAME VALUE``)."""

    def __init__(self, *args: Any, plugin_kind: str, plugin_flag: str, **kwargs: Any):
        super().__init__(*args, **kwargs)
        self.plugin_kind = plugin_kind
        self.plugin_flag = plugin_flag

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        """Note the plugin named on the command line, for ``--help``; then parse as usual."""
        ctx.meta["rf_plugin"] = _peek(args, self.plugin_flag)
        return super().parse_args(ctx, args)

    def format_epilog(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        """The epilog, then the installed plugins and the chosen plugin's options."""
        super().format_epilog(ctx, formatter)
        self._format_installed(formatter)
        name = ctx.meta.get("rf_plugin") or next(
            (p.default for p in self.params if p.name == self.plugin_flag.lstrip("-")), None)
        if name is not None:
            self._format_options(str(name), formatter)

    def _format_installed(self, formatter: click.HelpFormatter) -> None:
        from rf_core.plugins import manager

        try:
            installed = manager.registry(self.plugin_kind)
        except RFError:
            installed = {}
        if installed:
            # what is installed here, third-party plugins included, not a fixed list
            rows = [(name, manager.describe_impl(self.plugin_kind, impl))
                    for name, (_, impl) in sorted(installed.items())]
            with formatter.section(f"Installed {self.plugin_kind} (rf-plugins describes "
                                   "them)"):
                formatter.write_dl(rows)

    def _format_options(self, name: str, formatter: click.HelpFormatter) -> None:
        from rf_core.plugins import manager
        from rf_core.plugins.options import declared

        try:
            impl = manager.get(self.plugin_kind, name)
        except RFError:
            return
        rows = [(f"{o.name} " + ("|".join(map(str, o.choices)) if o.choices
                                 else o.type.__name__.upper()),
                 o.help + (" (repeatable)" if o.repeat else "")
                 + ("" if o.default is None else f"  [default: {_shown(o.default)}]"))
                for o in declared(impl)]
        kind = self.plugin_kind[:-1]
        with formatter.section(f"Options of {kind} {name!r} (-o NAME VALUE)"):
            if rows:
                formatter.write_dl(rows)
            else:
                formatter.write_text("none")


def _shown(default: Any) -> str:
    """A default as --help shows it: a repeatable option's tuple as its values."""
    return " ".join(map(str, default)) if isinstance(default, tuple) else str(default)


def plugin_command(prog: str, kind: str, flag: str) -> Callable[[Callable], click.Command]:
    """``click.command`` for a command that runs a ``kind`` plugin chosen by ``flag``."""
    return click.command(name=prog, cls=PluginCommand, plugin_kind=kind, plugin_flag=flag)


def _split_assignment(ctx: click.Context, param: click.Parameter, value: tuple[str, ...]
                      ) -> tuple[tuple[str, str], ...]:
    pairs = []
    for item in value:
        key, sep, text = item.partition("=")
        if not sep or not key:
            raise click.BadParameter(f"{item!r} is not NAME=VALUE")
        pairs.append((key, text))
    return tuple(pairs)


def plugin_options(fn: Callable) -> Callable:
    """``-o NAME VALUE`` and ``--option NAME=VALUE`` (both repeatable) as ``plugin_option``
    and ``plugin_assign`` arguments; ``plugin_kwargs`` joins them in order."""
    fn = click.option("--option", "plugin_assign", multiple=True, metavar="NAME=VALUE",
                      callback=_split_assignment,
                      help="A plugin option as NAME=VALUE (repeatable).")(fn)
    fn = click.option("-o", "plugin_option", type=(str, str), multiple=True,
                      metavar="NAME VALUE",
                      help="An option of the chosen plugin (repeatable); `rf-plugins` lists "
                           "each plugin's options.")(fn)
    return fn


def plugin_kwargs(prog: str, kind: str, name: str, impl: Any, params: dict) -> dict:
    """The chosen plugin's options from ``-o``/``--option``, checked against what the plugin
    declares (usage error, exit 2, naming the valid ones)."""
    from rf_core.plugins.options import resolve

    given = list(params.get("plugin_option") or ())
    given += list(params.get("plugin_assign") or ())
    try:
        return resolve(impl, given, kind=kind, name=name)
    except UsageError as exc:  # said as before: the plugin's name, not the command's
        raise click.UsageError(str(exc)) from None
