"""Plugin manager: hooks, registration by name, third-party loading, the example plugin."""

from __future__ import annotations

import inspect
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from rf_core.plugins import hookspecs
from rf_core.plugins import manager as plugins
from rf_core.errors import RFError, UnknownPlugin
from rf_core.plugins.hookspecs import hookimpl
from rf_core.testing import registered
from conftest import make_task, run

HOOKS = ["register_samplers", "register_verifiers", "register_trainers", "register_datasets",
         "register_matchers"]
README = Path(__file__).resolve().parents[1] / "README.md"


def test_every_hook_is_a_documented_registry():
    specs = sorted(n for n, f in vars(hookspecs).items()
                   if callable(f) and n.startswith("register_"))
    assert specs == sorted(HOOKS)
    for name in HOOKS:
        fn = getattr(hookspecs, name)
        assert list(inspect.signature(fn).parameters) == ["register"]
        assert fn.__doc__ and fn.__doc__.strip()
        assert f"{name}(register)" in README.read_text(), f"README does not document {name}"


def test_builtins_are_registered_as_plugins():
    plugins.load_plugins()
    names = {plugins.pm.get_name(p) for p in plugins.pm.get_plugins()}
    assert set(plugins.DEFAULT_PLUGINS) <= names
    assert "sqlite" in plugins.registry("verifiers")
    assert {"spider", "demo"} <= set(plugins.registry("datasets"))


class FakeVerifier:
    """Marks every candidate correct: a stand-in third-party verifier."""

    name = "always"

    def verify(self, tasks, **options):
        for task in tasks:
            for cand in task.get("candidates") or []:
                cand["correct"] = True
            task["verified_by"] = {"verifier": self.name, "matcher": "none"}
            yield task


class FakePlugin:
    @hookimpl
    def register_verifiers(self, register):
        register(FakeVerifier())


@pytest.fixture
def fake_plugin():
    with registered(FakePlugin(), name="fake") as plugin:
        yield plugin


def test_a_registered_plugin_is_chosen_by_name(fake_plugin, shop_db):
    r = run("rf-exec", ["--verifier", "always"], input=[make_task(shop_db, "SELECT 1", ["x"])])
    assert r.code == 0, r.stderr
    assert r.records[0]["candidates"][0]["correct"] is True
    listing = json.loads(run("rf-plugins").stdout)
    assert "always" in listing["verifiers"]
    fake = next(p for p in listing["plugins"] if p["name"] == "fake")
    assert fake["registers"] == {"verifiers": ["always"]} and fake["builtin"] is False


def test_two_plugins_registering_one_name_is_an_error(fake_plugin):
    class Clash:
        @hookimpl
        def register_verifiers(self, register):
            register(FakeVerifier())

    clash = Clash()
    plugins.pm.register(clash, name="clash")
    plugins.invalidate()
    try:
        with pytest.raises(RFError, match="verifier 'always' is registered by both"):
            plugins.registry("verifiers")
    finally:
        plugins.pm.unregister(clash)
        plugins.invalidate()


def test_a_misspelt_hook_fails_loudly():
    class Typo:
        @hookimpl
        def register_verifyers(self, register):
            pass

    pm = plugins.pluggy.PluginManager("reasonforge")
    pm.add_hookspecs(hookspecs)
    pm.register(Typo())
    with pytest.raises(plugins.pluggy.PluginValidationError):
        pm.check_pending()


def test_unknown_name_lists_installed():
    with pytest.raises(UnknownPlugin, match="unknown dataset 'nope'; installed: .*demo.*spider"):
        plugins.get("datasets", "nope")
    r = run("rf-data", ["nope"])
    assert r.code == 2 and "unknown dataset 'nope'" in r.stderr


def _rf_plugins(env_value):
    env = dict(os.environ)
    env.pop("RF_LOAD_PLUGINS", None)
    if env_value is not None:
        env["RF_LOAD_PLUGINS"] = env_value
    code = "from rf_core.commands.plugins import main; main()"
    proc = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True,
                          text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout), proc.stderr


def _example_installed() -> bool:
    try:
        import reasonforge_canonical  # noqa: F401
    except ImportError:
        return False
    return True


@pytest.fixture
def example_plugin():
    if not _example_installed():
        if os.environ.get("CI"):
            pytest.fail("the example plugin must be installed in CI (see Makefile)")
        pytest.skip("examples/reasonforge-canonical is not installed (make install does it)")


def test_rf_load_plugins_restricts_third_party(example_plugin):
    everything, _ = _rf_plugins(None)
    assert "canonical" in everything["verifiers"]
    builtins_only, _ = _rf_plugins("")
    assert "canonical" not in builtins_only["verifiers"]
    assert "sqlite" in builtins_only["verifiers"]
    named, _ = _rf_plugins("canonical")
    assert "canonical" in named["verifiers"]
    _, warning = _rf_plugins("canonical,absent")
    assert "RF_LOAD_PLUGINS names 'absent', which is not installed" in warning


def test_example_plugin_verifies_by_canonical_sql(example_plugin, shop_db, validate):
    entry = next(p for p in _rf_plugins(None)[0]["plugins"] if p["name"] == "canonical")
    assert entry["distribution"] == "reasonforge-canonical"
    task = make_task(shop_db, "SELECT name FROM product WHERE id = 1", [
        "select  NAME from PRODUCT where ID = 1", "SELECT name FROM product WHERE 1 = id"])
    r = run("rf-exec", ["--verifier", "canonical"], input=[task])
    assert r.code == 0, r.stderr
    out = r.records[0]
    validate(out)
    assert [c["correct"] for c in out["candidates"]] == [True, False]
    assert out["verified_by"] == {"verifier": "canonical", "matcher": "canonical-sql"}
    examples = run("rf-filter", input=[out]).records
    assert len(examples) == 1


def _installed_plugin(root: Path, dist: str, module: str, entry: str, source: str) -> dict:
    """A plugin "installed" into ``root`` (a module and its .dist-info with an entry point),
    and the environment that puts ``root`` on the path."""
    (root / f"{module}.py").write_text(source)
    info = root / f"{dist.replace('-', '_')}-0.1.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {dist}\nVersion: 0.1\n")
    (info / "entry_points.txt").write_text(f"[reasonforge]\n{entry} = {module}\n")
    env = dict(os.environ)
    env.pop("RF_LOAD_PLUGINS", None)
    env["PYTHONPATH"] = os.pathsep.join([str(root), env.get("PYTHONPATH", "")])
    return env


def _command(env, name, *args, stdin=""):
    code = (f"import sys; from rf_core.commands.{name} import main; "
            f"sys.argv[0] = 'rf-{name}'; main()")
    return subprocess.run([sys.executable, "-c", code, *args], env=env, input=stdin,
                          capture_output=True, text=True, timeout=120)


def test_a_plugin_that_fails_to_import_is_skipped_once_with_a_warning(tmp_path):
    env = _installed_plugin(tmp_path, "reasonforge-broken", "reasonforge_broken", "broken",
                            "raise ImportError('needs a library that is not here')\n")
    proc = _command(env, "plugins")
    assert proc.returncode == 0, proc.stderr
    assert proc.stderr.count("plugin 'broken' failed to load and is skipped") == 1
    assert "needs a library that is not here" in proc.stderr
    data = json.loads(proc.stdout)
    assert data["failed"] == {"broken": "ImportError: needs a library that is not here"}
    assert "sqlite" in data["verifiers"]
    # a command that does not need it still works
    proc = _command(env, "data", "demo", "--split", "dev", "--limit", "1")
    assert proc.returncode == 0 and proc.stdout.count("\n") == 1
    # asking for the name it would have provided says why it is missing
    proc = _command(env, "exec", "--verifier", "broken", stdin="")
    assert proc.returncode == 1
    assert "verifier 'broken': plugin 'broken' failed to load: ImportError" in proc.stderr


PLUGIN = '''
from rf_core.api import hookimpl

class Nothing:
    name = "nothing"

    def verify(self, tasks, **options):
        yield from tasks

@hookimpl
def register_verifiers(register):
    register(Nothing())
'''


@pytest.mark.parametrize("selector", ["nothing", "reasonforge-nothing", "reasonforge_nothing"])
def test_rf_load_plugins_takes_entry_point_distribution_and_module_names(tmp_path, selector):
    env = _installed_plugin(tmp_path, "reasonforge-nothing", "reasonforge_nothing", "nothing",
                            PLUGIN)
    env["RF_LOAD_PLUGINS"] = selector
    proc = _command(env, "plugins")
    assert proc.returncode == 0, proc.stderr
    assert "nothing" in json.loads(proc.stdout)["verifiers"]
    assert "not installed" not in proc.stderr


def test_unknown_name_mentions_the_load_filter(tmp_path):
    env = _installed_plugin(tmp_path, "reasonforge-nothing", "reasonforge_nothing", "nothing",
                            PLUGIN)
    env["RF_LOAD_PLUGINS"] = ""
    proc = _command(env, "exec", "--verifier", "nothing", stdin="")
    assert proc.returncode == 2
    assert "unknown verifier 'nothing'" in proc.stderr
    assert "RF_LOAD_PLUGINS= limits which plugins load" in proc.stderr
