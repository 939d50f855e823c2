"""nan, inf and -inf are usage errors wherever a number is an option: every float option of
every rf-* command (found by walking the click commands of pyproject's scripts) and every float
option a registered plugin declares. Before this, `--timeout nan` turned off every deadline and
`-o alpha nan` wrote NaN into an adapter's config."""

from __future__ import annotations

import importlib
import tomllib

import click
import pytest
from click.testing import CliRunner

from conftest import ROOT
from rf_core.plugins import manager
from rf_core.plugins.options import Option, declared

NON_FINITE = ["nan", "inf", "-inf"]


def _scripts():
    scripts = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["scripts"]
    for prog, target in sorted(scripts.items()):
        module, attr = target.split(":")
        yield prog, getattr(importlib.import_module(module), attr)


def _leaves(cmd, path=()):
    """(subcommand path, command) of every runnable command under ``cmd``."""
    if isinstance(cmd, click.Group):
        for name, sub in sorted(cmd.commands.items()):
            yield from _leaves(sub, (*path, name))
    else:
        yield path, cmd


def _float_options():
    found = []
    for prog, top in _scripts():
        for path, cmd in _leaves(top):
            for p in cmd.params:
                if isinstance(p, click.Option) and isinstance(p.type, click.types.FloatParamType):
                    found.append(pytest.param(top, path, cmd, p, id=" ".join((prog, *path,
                                                                                p.opts[0]))))
    return found


def _required_args(cmd) -> list[str]:
    """A placeholder for every required parameter, so that only the number can be wrong."""
    args = []
    for p in cmd.params:
        if p.required and isinstance(p, click.Argument):
            args.append("x")
        elif p.required:
            args += [p.opts[0], "x"]
    return args


def _usage_line(stderr: str) -> str:
    """The one message line of a click usage error (its Usage/Try lines aside)."""
    lines = [ln for ln in stderr.splitlines()
             if ln.strip() and not ln.startswith(("Usage:", "Try '"))]
    assert len(lines) == 1, stderr
    return lines[0]


def test_every_command_has_float_options_to_check():
    # the walk found the commands' numbers (a broken walk would make the test below vacuous)
    names = {p.id for p in _float_options()}
    assert {"rf-sample --temperature", "rf-sample --top-p", "rf-train --lr",
            "rf-exec --timeout", "rf-model stop --grace"} <= names


@pytest.mark.parametrize("value", NON_FINITE)
@pytest.mark.parametrize("top,path,cmd,param", _float_options())
def test_float_option_rejects_non_finite(top, path, cmd, param, value, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    args = [*path, *_required_args(cmd), f"{param.opts[0]}={value}"]
    r = CliRunner().invoke(top, args, input=b"", catch_exceptions=False)
    assert r.exit_code == 2, (r.stdout, r.stderr)
    line = _usage_line(r.stderr)
    assert line.startswith("Error:") and any(f"'{o}'" in line for o in param.opts), line
    # -inf below a declared minimum may be refused by that bound first: either way, exit 2
    assert "not a finite number" in line or "not in the range" in line, line
    assert r.stdout == ""


# the command that runs each kind of plugin, with what it needs besides the plugin's option
PLUGIN_COMMANDS = {
    "samplers": ("rf_core.commands.sample", lambda n: ["--model", "x", "--sampler", n]),
    "verifiers": ("rf_core.commands.exec", lambda n: ["--verifier", n]),
    "trainers": ("rf_core.commands.train", lambda n: ["--base", "x", "--out", "o",
                                                      "--trainer", n]),
    "datasets": ("rf_core.commands.data", lambda n: [n]),
}


def _float_plugin_options():
    found = []
    for kind in manager.KINDS:
        for name, (_, impl) in sorted(manager.registry(kind).items()):
            for option in declared(impl):
                if option.type is float:
                    found.append(pytest.param(kind, name, option.name,
                                              id=f"{kind[:-1]} {name} {option.name}"))
    return found


def test_plugins_have_float_options_to_check():
    names = {p.id for p in _float_plugin_options()}
    assert {"trainer peft alpha", "trainer peft dropout",
            "verifier sqlite variants_max_mb"} <= names


@pytest.mark.parametrize("value", NON_FINITE)
@pytest.mark.parametrize("kind,name,option", _float_plugin_options())
def test_float_plugin_option_rejects_non_finite(kind, name, option, value, tmp_path,
                                                monkeypatch):
    monkeypatch.chdir(tmp_path)
    module, args = PLUGIN_COMMANDS[kind]
    r = CliRunner().invoke(importlib.import_module(module).cli,
                           [*args(name), "-o", option, value], input=b"",
                           catch_exceptions=False)
    assert r.exit_code == 2, (r.stdout, r.stderr)
    line = _usage_line(r.stderr)
    assert line.startswith("Error:") and f"option {option!r}" in line, line
    assert "finite number" in line, line


@pytest.mark.parametrize("text", ["nan", "NaN", "inf", "-Infinity", "1e999"])
def test_option_conversion_rejects_non_finite(text):
    with pytest.raises(ValueError, match="expected a finite number"):
        Option("x", float).convert(text)
    assert Option("x", float).convert("1e300") == 1e300


def test_every_seed_option_is_64_bit_signed():
    from rf_core.commands.params import Seed

    seeds = [(prog, path) for prog, top in _scripts() for path, cmd in _leaves(top)
             for p in cmd.params if p.name == "seed"]
    assert ("rf-data", ()) in seeds and ("rf-sample", ()) in seeds and ("rf-train", ()) in seeds
    for prog, top in _scripts():
        for path, cmd in _leaves(top):
            for p in cmd.params:
                if p.name == "seed":
                    assert isinstance(p.type, Seed), (prog, path)
    result = CliRunner().invoke(dict(_scripts())["rf-data"], ["demo", "--seed", str(2**63)])
    assert result.exit_code == 2 and "--seed" in result.output
