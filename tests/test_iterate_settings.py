"""bin/iterate.sh's settings as hostile input: every value is checked against its type before
any use, numbers are never evaluated, strings reach the stages as one literal argument, and
the files the driver writes in --out are never written through a symbolic link.

The rf-* commands are fakes on PATH that log their arguments, so these tests take seconds.
"""

from __future__ import annotations

import os
import shlex
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = str(ROOT / "bin" / "iterate.sh")
BASE = ["--model", "fake", "--dataset", "demo", "--iterations", "1", "-k", "2",
        "--train-size", "2", "--dev-size", "1", "--val-size", "1", "--vote", "0"]

FAKE = r"""#!/usr/bin/env bash
# A stand-in for an rf-* command: logs its call (one line, each argument quoted by %q, in one
# write: the two sides of a pipe log at once) and writes what the next stage needs.
name=$(basename "$0")
line=$(printf '%q' "$name"; printf ' %q' "$@")
echo "$line" >> "$CALLS"
case $name in
  rf-data) echo '{}' ;;
  rf-report) echo "# report" > "$1/report.md" ;;
  rf-eval|rf-train) echo '{}' ;;
  rf-filter|rf-inject) cat > /dev/null ;;
  *) cat ;;
esac
"""


@pytest.fixture
def env(tmp_path) -> dict:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for name in ("rf-data", "rf-sample", "rf-exec", "rf-vote", "rf-eval", "rf-filter",
                 "rf-inject", "rf-train", "rf-report", "rf-model"):
        (bin_dir / name).write_text(FAKE)
        (bin_dir / name).chmod(0o755)
    env = {k: v for k, v in os.environ.items() if not k.startswith("RF_")}
    env["PATH"] = f"{bin_dir}{os.pathsep}{env['PATH']}"
    env["CALLS"] = str(tmp_path / "calls")
    return env


def drive(env, tmp_path, *args, **variables) -> subprocess.CompletedProcess:
    """The driver, run in tmp_path (so a glob would see its files), with RF_* variables."""
    return subprocess.run(["bash", SCRIPT, *args], env={**env, **variables}, cwd=tmp_path,
                          capture_output=True, text=True, timeout=60)


def base_without(flag: str | None) -> list[str]:
    """BASE less FLAG and its value: a flag wins over its RF_* variable."""
    i = BASE.index(flag) if flag in BASE else len(BASE)
    return BASE[:i] + BASE[i + 2:]


def calls(tmp_path) -> list[list[str]]:
    path = tmp_path / "calls"
    return [shlex.split(line) for line in path.read_text().splitlines()] if path.exists() else []


# -- numbers: checked once, never evaluated, never pasted -----------------------------------

# setting -> (its flag, or None for a bool, which takes no value; what it expects)
NUMBERS = {
    "ITERATIONS": ("--iterations", "a non-negative integer"),
    "K": ("-k", "a positive integer"),
    "TEMPERATURE": ("--temperature", "a finite non-negative number"),
    "TRAIN_SIZE": ("--train-size", "a non-negative integer"),
    "DEV_SIZE": ("--dev-size", "a non-negative integer"),
    "VAL_SIZE": ("--val-size", "a non-negative integer"),
    "SFT_BASELINE": (None, "0 or 1"),
    "VOTE": ("--vote", "a non-negative integer"),
    "VALUES": ("--values", "a non-negative integer"),
    "MAX_NEW_TOKENS": ("--max-new-tokens", "a positive integer"),
    "EPOCHS": ("--epochs", "a positive integer"),
    "LR": ("--lr", "a finite non-negative number"),
    "BATCH_SIZE": ("--batch-size", "a positive integer"),
    "MAX_LEN": ("--max-len", "a positive integer"),
    "MAX_TOO_LONG": ("--max-too-long", "a finite non-negative number"),
    "MAX_PER_TASK": ("--max-per-task", "a non-negative integer"),
    "VERIFY_VARIANTS": ("--verify-variants", "a non-negative integer"),
    "RETRAIN_ON_ERRORS": (None, "0 or 1"),
    "SEED": ("--seed", "an integer"),
}
# an array subscript runs in bash arithmetic; a substitution runs where it is pasted into a
# stage's command; spaces add arguments to that command
PAYLOADS = {"subscript": "PATH[$(touch {m})]", "substitution": "0$(touch {m})",
            "arguments": "0 --adapter {m}"}


def number_cases():
    for name, (flag, _) in NUMBERS.items():
        for source in ("flag", "env") if flag else ("env",):
            for dry in (True, False):
                for payload in PAYLOADS:
                    yield pytest.param(name, source, dry, payload,
                                       id=f"{name}-{source}-{'dry' if dry else 'run'}-{payload}")


@pytest.mark.parametrize("name, source, dry, payload", list(number_cases()))
def test_a_number_setting_is_checked_before_any_use(env, tmp_path, name, source, dry, payload):
    marker = tmp_path / "pwned"
    value = PAYLOADS[payload].format(m=marker)
    flag, expected = NUMBERS[name]
    out = tmp_path / "run"
    args = [*base_without(flag), "--out", str(out), *(["--dry-run"] if dry else [])]
    variables = {}
    if source == "flag":
        args += [flag, value]
    else:
        variables[f"RF_{name}"] = value
    r = drive(env, tmp_path, *args, **variables)
    assert not marker.exists(), "the value was run as a command"
    assert r.returncode == 2, r.stderr
    shown = flag or "--" + name.lower().replace("_", "-")
    assert r.stderr == f"iterate.sh: {shown} (RF_{name}): expected {expected}, got '{value}'\n"
    assert r.stdout == "" and not out.exists() and not calls(tmp_path)


@pytest.mark.parametrize("flag, value", [
    ("--temperature", "nan"), ("--temperature", "inf"), ("--lr", "-inf"), ("--lr", "1e999"),
    ("--lr", "0x10"), ("--lr", "1e"), ("--lr", "."), ("--lr", "1_0"), ("--temperature", "-0.5"),
    ("--vote", "-1"), ("--vote", "1.5"), ("--vote", ""), ("--vote", " 1"), ("-k", "0"),
    ("--seed", "1e3"), ("--seed", "99999999999999999999"), ("--iterations", "+1")])
def test_bad_numbers_are_usage_errors(env, tmp_path, flag, value):
    r = drive(env, tmp_path, *BASE, flag, value, "--dry-run")
    assert r.returncode == 2 and r.stdout == ""
    assert r.stderr.startswith(f"iterate.sh: {flag} (RF_") and r.stderr.count("\n") == 1
    assert f"got '{value}'" in r.stderr


def test_bad_bools_and_choices_are_usage_errors(env, tmp_path):
    r = drive(env, tmp_path, *BASE, "--dry-run", RF_SFT_BASELINE="yes")
    assert r.returncode == 2
    assert r.stderr == ("iterate.sh: --sft-baseline (RF_SFT_BASELINE): expected 0 or 1, "
                        "got 'yes'\n")
    r = drive(env, tmp_path, *BASE, "--dry-run", "--resample", "$(true)")
    assert r.returncode == 2
    assert r.stderr == ("iterate.sh: --resample (RF_RESAMPLE): expected one of none, "
                        "difficulty, weight, got '$(true)'\n")


def test_good_numbers_pass_unchanged_or_in_canonical_form(env, tmp_path):
    r = drive(env, tmp_path, *BASE, "--dry-run", "--temperature", ".5", "--lr", "2E-4",
              "--seed", "-3", "--max-too-long", "100", "-k", "08", "--vote", "010",
              RF_MAX_PER_TASK="0", RF_RETRAIN_ON_ERRORS="1")
    assert r.returncode == 0, r.stderr
    lines = r.stdout.splitlines()
    train = shlex.split(next(x for x in lines if x.startswith("rf-train ")).split(" < ")[0])
    assert train[train.index("--lr") + 1] == "2E-4"
    assert train[train.index("--seed") + 1] == "-3"
    assert train[train.index("--max-too-long") + 1] == "100"
    sample = [shlex.split(x.split(" < ")[0]) for x in lines if x.startswith("rf-sample ")]
    assert any(s[-4:] == ["-k", "8", "--temperature", ".5"] for s in sample)  # train tasks
    assert any(s[-4:] == ["-k", "10", "--temperature", ".5"] for s in sample)  # the vote
    assert "rf-filter --tasks wrong" in r.stdout and "--max-per-task" not in r.stdout


@pytest.mark.parametrize("preset", ["cpu-demo", "spider-h100", "spider-full"])
def test_every_preset_passes_the_checks(env, tmp_path, preset):
    r = drive(env, tmp_path, "--preset", preset, "--dry-run")
    assert r.returncode == 0, r.stderr


# -- strings: one literal argument each, never evaluated ------------------------------------

# setting -> (its flag, the command that receives it, the flag it has there)
STRINGS = {
    "MODEL": ("--model", "rf-sample", "--model"),
    "TRAIN_MODEL": ("--train-model", "rf-train", "--base"),
    "DATASET": ("--dataset", "rf-data", None),  # its first argument
    "ROOT": ("--root", "rf-data", "--root"),
    "VAL_SPLIT": ("--val-split", "rf-data", "--split"),
    "SAMPLER": ("--sampler", "rf-sample", "--sampler"),
    "VERIFIER": ("--verifier", "rf-exec", "--verifier"),
    "TRAINER": ("--trainer", "rf-train", "--trainer"),
    "SELECT_MATCHER": ("--select-matcher", "rf-exec", "--matcher"),
    "OUT": ("--out", "rf-report", None),
    "DATASET_OPTIONS": ("--dataset-option", "rf-data", "--option"),
    "SAMPLER_OPTIONS": ("--sampler-option", "rf-sample", "--option"),
    "VERIFIER_OPTIONS": ("--verifier-option", "rf-exec", "--option"),
    "TRAINER_OPTIONS": ("--trainer-option", "rf-train", "--option"),
}


def string_cases():
    for name in STRINGS:
        for source in ("flag", "env"):
            for dry in (True, False):
                yield pytest.param(name, source, dry,
                                   id=f"{name}-{source}-{'dry' if dry else 'run'}")


@pytest.mark.parametrize("name, source, dry", list(string_cases()))
def test_a_string_setting_reaches_its_stage_as_one_literal_argument(env, tmp_path, name,
                                                                    source, dry):
    marker = tmp_path / "pwned"
    # no spaces: option values may have none
    value = f"x$(touch${{IFS}}{marker})`touch${{IFS}}{marker}`;touch${{IFS}}{marker};*"
    flag, command, its_flag = STRINGS[name]
    if name.endswith("_OPTIONS"):
        value = "name=" + value
    elif name == "OUT":
        value = str(tmp_path / "o") + value
    args = [*base_without(flag), *(["--dry-run"] if dry else [])]
    if name != "OUT":
        args += ["--out", str(tmp_path / "run")]
    variables = {}
    if source == "flag":
        args += [flag, value]
    else:
        variables[f"RF_{name}"] = value
    r = drive(env, tmp_path, *args, **variables)
    assert not marker.exists(), "the value was run as a command"
    assert r.returncode == 0, r.stderr
    if dry:
        ran = [shlex.split(line.split(" > ")[0]) for line in r.stdout.splitlines()]
        ran = [[word for word in c if word not in ("<", "|")] for c in ran]
        assert not calls(tmp_path)
    else:
        ran = calls(tmp_path)
    mine = [c for c in ran if c[0] == command and (its_flag is None or its_flag in c)]
    assert mine, r.stdout
    got = [c[c.index(its_flag) + 1] if its_flag else c[1] for c in mine]
    assert value in got, got
    if not dry and name == "OUT":
        assert (Path(value) / "report.md").is_file()
    if not dry and name.endswith("_OPTIONS"):  # recorded as given
        assert f"{name}={value}" in (tmp_path / "run" / "config.env").read_text().splitlines()


@pytest.mark.parametrize("source", ["flag", "env"])
@pytest.mark.parametrize("dry", [True, False])
def test_option_values_are_not_globbed(env, tmp_path, source, dry):
    (tmp_path / "dtype=bf16").write_text("")  # what dtype=* would match in the working folder
    args = [*BASE, "--out", str(tmp_path / "run"), *(["--dry-run"] if dry else [])]
    variables = {}
    if source == "flag":
        args += ["--sampler-option", "dtype=*"]
    else:
        variables["RF_SAMPLER_OPTIONS"] = "dtype=* b=?"
    r = drive(env, tmp_path, *args, **variables)
    assert r.returncode == 0, r.stderr
    if dry:
        ran = [shlex.split(line.split(" < ")[0]) for line in r.stdout.splitlines()]
    else:
        ran = calls(tmp_path)
    samples = [c for c in ran if c[0] == "rf-sample"]
    assert samples and all(c[c.index("--option") + 1] == "dtype=*" for c in samples)
    if not dry:
        config = (tmp_path / "run" / "config.env").read_text().splitlines()
        assert ("SAMPLER_OPTIONS=dtype=*" if source == "flag" else
                "SAMPLER_OPTIONS=dtype=* b=?") in config


@pytest.mark.parametrize("value", ["a\nK=9", "a\rb"])
def test_a_string_is_one_line_so_config_env_keeps_one_setting_a_line(env, tmp_path, value):
    r = drive(env, tmp_path, *base_without("--model"), "--out", str(tmp_path / "run"),
              RF_MODEL=value)
    assert r.returncode == 2
    assert r.stderr.startswith("iterate.sh: --model (RF_MODEL): expected one line")
    assert r.stderr.count("\n") == 1 and not (tmp_path / "run").exists()


# -- --out ----------------------------------------------------------------------------------

@pytest.mark.parametrize("value, why", [("", "expected a folder, got ''"),
                                        ("-x", "starts with '-'")])
@pytest.mark.parametrize("dry", [True, False])
def test_an_unusable_out_is_one_usage_line(env, tmp_path, value, why, dry):
    r = drive(env, tmp_path, *BASE, "--out", value, *(["--dry-run"] if dry else []))
    assert r.returncode == 2 and r.stdout == ""
    assert r.stderr.startswith("iterate.sh: --out (RF_OUT): ") and why in r.stderr
    assert r.stderr.count("\n") == 1
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bin"]


def test_an_out_that_cannot_be_made_is_one_line(env, tmp_path):
    (tmp_path / "file").write_text("")
    r = drive(env, tmp_path, *BASE, "--out", str(tmp_path / "file" / "run"))
    assert r.returncode == 2
    assert r.stderr.startswith("iterate.sh: --out (RF_OUT): cannot make the folder")
    assert r.stderr.count("\n") == 1


# -- symbolic links in --out ----------------------------------------------------------------

@pytest.mark.parametrize("name", [".lock", "timings.tsv", "data", "iter0", "iter1", "sft"])
@pytest.mark.parametrize("dangling", [False, True])
def test_the_driver_writes_through_no_symbolic_link_in_out(env, tmp_path, name, dangling):
    out = tmp_path / "run"
    out.mkdir()
    target = tmp_path / "elsewhere"
    if not dangling:
        if name in (".lock", "timings.tsv"):
            target.write_text("precious\n")
        else:
            target.mkdir()
    (out / name).symlink_to(target)
    r = drive(env, tmp_path, *BASE, "--out", str(out))
    assert r.returncode == 2, r.stderr
    assert r.stderr == (f"iterate.sh: {out / name} is a symbolic link: the driver writes "
                        "only files of its own in --out\n")
    if dangling:
        assert not target.exists()
    elif target.is_file():
        assert target.read_text() == "precious\n"
    else:
        assert not list(target.iterdir())
    assert not calls(tmp_path)


def test_a_symbolic_link_made_between_runs_is_refused(env, tmp_path):
    out = tmp_path / "run"
    assert drive(env, tmp_path, *BASE, "--out", str(out)).returncode == 0
    target = tmp_path / "elsewhere"
    target.write_text("precious\n")
    (out / "timings.tsv").unlink()
    (out / "timings.tsv").symlink_to(target)
    (out / "iter1" / "dev.greedy.report.json").unlink()  # one stage to redo
    r = drive(env, tmp_path, *BASE, "--out", str(out))
    assert r.returncode == 2 and "timings.tsv is a symbolic link" in r.stderr
    assert target.read_text() == "precious\n"


@pytest.mark.parametrize("compat", ["", "51"])  # bash 5.1 expands the key of [[ -v A[$k] ]]
@pytest.mark.parametrize("source", ["flag", "env"])
def test_a_preset_name_is_never_evaluated(env, tmp_path, compat, source):
    marker = tmp_path / "pwned"
    value = f"$(touch {marker})"
    args = ["--preset", value] if source == "flag" else []
    variables = {"BASH_COMPAT": compat} if compat else {}
    if source == "env":
        variables["RF_PRESET"] = value
    r = drive(env, tmp_path, *args, "--dry-run", **variables)
    assert not marker.exists(), "the preset's name was run as a command"
    assert r.returncode == 2 and f"unknown preset '{value}'" in r.stderr
