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
``--option concurrency=4``; a ``repeat`` option may be given several times (each value kept,
in order: ``-o base_url URL1 -o base_url URL2``), any other takes the last value given. The
command checks each value against the chosen plugin's declaration (an unknown name or a value
of the wrong type is a usage error, exit 2, naming the valid options) and calls the plugin
with every declared option, defaults filled in.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import Any, Iterable

from rf_core.errors import RFError, UsageError

_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off"}
# int options end in torch, numpy or SQLite, whose integers are 64-bit signed
INT_MIN, INT_MAX = -2**63, 2**63 - 1
# what the built-in engines accept as a device: torch's name for it, checked before loading
DEVICE_PATTERN = r"auto|cpu|cuda(:\d+)?"


@dataclass(frozen=True)
class Option:
    """One option of a plugin: ``type`` is str, int, float or bool. A float is finite (nan
    and inf would slip past every bound and turn limits off); an int is 64-bit signed;
    ``pattern`` is a regular expression a str value must match whole; a ``repeat`` option's
    value is a tuple of every value given, in order (its ``default``, a tuple, when none is).

    ``name``: the keyword argument the plugin's method receives (and ``-o NAME``);
    ``default``: its value when not given (None: none); ``help``: one line for ``--help`` and
    rf-plugins; ``choices``: the values allowed, if only some are; ``minimum`` and
    ``maximum``: inclusive bounds of an int or float; ``repeat``: may be given several times.
    """

    name: str
    type: type = str
    default: Any = None
    help: str = ""
    choices: tuple | None = None
    minimum: float | None = None
    maximum: float | None = None
    pattern: str | None = None
    repeat: bool = False

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
            if self.type is float and not math.isfinite(value):
                raise ValueError(f"expected a finite number, got {text!r}")
            if self.type is int and not INT_MIN <= value <= INT_MAX:
                raise ValueError(f"expected an integer from -2^63 to 2^63-1, got {text!r}")
            if self.minimum is not None and value < self.minimum:
                raise ValueError(f"{value} is below the minimum {self.minimum:g}")
            if self.maximum is not None and value > self.maximum:
                raise ValueError(f"{value} is above the maximum {self.maximum:g}")
        else:
            value = text
            if self.pattern is not None and not re.fullmatch(self.pattern, value):
                raise ValueError(f"expected {self.pattern}, got {text!r}")
        if self.choices is not None and value not in self.choices:
            raise ValueError(f"expected one of {', '.join(map(str, self.choices))}, "
                             f"got {text!r}")
        return value

    def describe(self) -> dict:
        """As ``rf-plugins`` shows it."""
        default = list(self.default) if isinstance(self.default, tuple) else self.default
        entry = {"name": self.name, "type": self.type.__name__, "default": default,
                 "help": self.help}
        for key in ("choices", "minimum", "maximum", "pattern"):
            if getattr(self, key) is not None:
                entry[key] = list(self.choices) if key == "choices" else getattr(self, key)
        if self.repeat:
            entry["repeat"] = True
        return entry


def check_device(device: str) -> None:
    """RFError (exit 1) where ``device``, a DEVICE_PATTERN value, names a CUDA device this
    machine lacks: said before a model is loaded, not as torch's error after. Imports torch
    for a CUDA device only."""
    if not device.startswith("cuda"):
        return
    import torch

    count = torch.cuda.device_count() if torch.cuda.is_available() else 0
    index = int(device.partition(":")[2] or 0)
    if index >= count:
        have = "none" if count == 0 else ", ".join(f"cuda:{i}" for i in range(count))
        raise RFError(f"option 'device': this machine has no {device} (its CUDA devices: "
                      f"{have})")


def declared(impl: Any) -> tuple[Option, ...]:
    """The options ``impl`` declares (none when it has no ``options`` attribute)."""
    return tuple(getattr(impl, "options", ()) or ())


def resolve(impl: Any, given: Iterable[tuple[str, str]], *, kind: str, name: str
            ) -> dict[str, Any]:
    """Every declared option of ``impl``: defaults, overridden by ``given`` (name, text) pairs.

    An unknown name or a bad value raises UsageError (exit 2) naming the valid options.
    """
    spec = {o.name: o for o in declared(impl)}
    values = {o.name: o.default for o in spec.values()}
    valid = ", ".join(spec) or "none"
    repeated: dict[str, list] = {}
    for key, text in given:
        key = key.replace("-", "_")
        if key not in spec:
            raise UsageError(f"{kind} {name!r} has no option {key!r}; its options: {valid}")
        try:
            value = spec[key].convert(text)
        except ValueError as exc:
            raise UsageError(f"option {key!r} of {kind} {name!r}: {exc}") from None
        if spec[key].repeat:  # the first value given replaces the default, later ones add
            repeated.setdefault(key, []).append(value)
            value = tuple(repeated[key])
        values[key] = value
    return values
