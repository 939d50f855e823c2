"""Plugin-owned options: each plugin declares its own, commands pass them with ``-o``.

A plugin object lists its options in an ``options`` attribute::

    class MySampler:
        name = "mine"
        options = (
            Option("base_url", str, "http://127.0.0.1:8000/v1", "Server address."),
            Option("concurrency", int, 8, "Requests in flight.", minimum=1),
        )

        def sample(self, tasks, *, model, k, ..., base_url, concurrency, **_):
            ...

On the command line they are ``-o base_url http://... -o concurrency 4`` or
``--option concurrency=4``. The command checks each value against the chosen plugin's
declaration (an unknown name or a value of the wrong type is a usage error, exit 2, naming the
valid options) and calls the plugin with every declared option, defaults filled in.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Iterable

import click

_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off"}


@dataclass(frozen=True)
class Option:
    """One option of a plugin: ``type`` is str, int, float or bool."""

    name: str
    type: type = str
    default: Any = None
    help: str = ""
    choices: tuple | None = None
    minimum: float | None = None
    maximum: float | None = None

    def convert(self, text: str) -> Any:
        """The typed value of ``text``; ValueError says what was expected."""
        if self.type is bool:
            low = text.strip().lower()
            if low in _TRUE or low in _FALSE:
                value: Any = low in _TRUE
            else:
                raise ValueError(f"expected true or false, got {text!r}")
        elif self.type in (int, float):
            try:
                value = self.type(text)
            except ValueError:
                raise ValueError(f"expected {self.type.__name__}, got {text!r}") from None
            if self.minimum is not None and value < self.minimum:
                raise ValueError(f"{value} is below the minimum {self.minimum:g}")
            if self.maximum is not None and value > self.maximum:
                raise ValueError(f"{value} is above the maximum {self.maximum:g}")
        else:
            value = text
        if self.choices is not None and value not in self.choices:
            raise ValueError(f"expected one of {', '.join(map(str, self.choices))}, "
                             f"got {text!r}")
        return value

    def describe(self) -> dict:
        """As ``rf-plugins`` shows it."""
        entry = {"name": self.name, "type": self.type.__name__, "default": self.default,
                 "help": self.help}
        for key in ("choices", "minimum", "maximum"):
            if getattr(self, key) is not None:
                entry[key] = list(self.choices) if key == "choices" else getattr(self, key)
        return entry


def declared(impl: Any) -> tuple[Option, ...]:
    """The options ``impl`` declares (none when it has no ``options`` attribute)."""
    return tuple(getattr(impl, "options", ()) or ())


def resolve(impl: Any, given: Iterable[tuple[str, str]], *, kind: str, name: str
            ) -> dict[str, Any]:
    """Every declared option of ``impl``: defaults, overridden by ``given`` (name, text) pairs.

    An unknown name or a bad value raises click.UsageError naming the valid options.
    """
    spec = {o.name: o for o in declared(impl)}
    values = {o.name: o.default for o in spec.values()}
    valid = ", ".join(spec) or "none"
    for key, text in given:
        key = key.replace("-", "_")
        if key not in spec:
            raise click.UsageError(f"{kind} {name!r} has no option {key!r}; its options: "
                                   f"{valid}")
        try:
            values[key] = spec[key].convert(text)
        except ValueError as exc:
            raise click.UsageError(f"option {key!r} of {kind} {name!r}: {exc}") from None
    return values


def _split_assignment(ctx, param, value):
    pairs = []
    for item in value:
        key, sep, text = item.partition("=")
        if not sep or not key:
            raise click.BadParameter(f"{item!r} is not NAME=VALUE")
        pairs.append((key, text))
    return tuple(pairs)


def plugin_options(fn: Callable) -> Callable:
    """``-o NAME VALUE`` and ``--option NAME=VALUE`` (both repeatable) as ``plugin_option``
    and ``plugin_assign`` arguments; ``given_options(...)`` joins them in order."""
    fn = click.option("--option", "plugin_assign", multiple=True, metavar="NAME=VALUE",
                      callback=_split_assignment,
                      help="A plugin option as NAME=VALUE (repeatable).")(fn)
    fn = click.option("-o", "plugin_option", type=(str, str), multiple=True,
                      metavar="NAME VALUE",
                      help="An option of the chosen plugin (repeatable); `rf-plugins` lists "
                           "each plugin's options.")(fn)
    return fn


def given_options(plugin_option, plugin_assign, legacy: Iterable[tuple[str, str]] = ()
                  ) -> list[tuple[str, str]]:
    return [*legacy, *plugin_option, *plugin_assign]
