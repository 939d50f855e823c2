"""Where rf-sample's time goes: loading, prefill and decode, on its summary line, in each
batch's line and in its --stats file; the loop records them per stage in history.json, and
samples a row's dev and validation tasks in one call. The hf sampler's opt-in int8 weights."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import orjson
import pytest

from conftest import make_task, run

ROOT = Path(__file__).resolve().parents[1]


def tasks(db: str, n: int) -> list[dict]:
    return [make_task(db, "SELECT 1", id=f"t/{i}", question=f"How many rows in table {i}?")
            for i in range(n)]


def test_stats_file_and_summary_line_split_load_prefill_decode(tiny_model, shop_db, tmp_path):
    stats = tmp_path / "s" / "sample.json"
    r = run("rf-sample", ["--sampler", "hf", "-m", tiny_model, "-k", "2", "-t", "1.0",
                          "--max-new-tokens", "6", "--stats", str(stats), "-o", "batch_tokens",
                          "64"], input=tasks(shop_db, 3))
    assert r.code == 0, r.stderr
    figures = orjson.loads(stats.read_bytes())
    assert figures["engine"] == "hf" and figures["sampler"] == "hf"
    assert figures["tasks"] == 3 and figures["candidates"] == 6
    assert figures["new_tokens"] == sum(c["n_tokens"] + c["finished"]
                                        for t in r.records for c in t["candidates"])
    assert figures["batches"] >= 2  # the small budget splits the tasks
    assert 0 < figures["prefill_tokens"] <= figures["prompt_tokens"]
    for key in ("load_s", "prefill_s", "decode_s", "generate_s", "wall_s"):
        assert figures[key] >= 0, key
    assert figures["prefill_s"] + figures["decode_s"] <= figures["generate_s"] + 0.01
    assert figures["wall_s"] >= figures["load_s"] + figures["generate_s"] - 0.01
    last = r.stderr.strip().splitlines()[-1]
    assert re.fullmatch(r"rf-sample: time: load [\d.]+ s, generation [\d.]+ s \(prefill "
                        rf"{figures['prefill_tokens']:,} tok in [\d.]+ s \(.+\), decode "
                        rf"{figures['new_tokens']:,} tok in [\d.]+ s \(.+\)\)", last), last
    # each batch's closing line says what that batch alone prefilled and decoded
    done = [line for line in r.stderr.splitlines() if ": done, " in line]
    assert done and all(re.search(r"\(prefill [\d,]+ tok in [\d.]+ s .*decode [\d,]+ tok in",
                                  line) for line in done)


def test_an_engine_without_phases_gets_load_and_generation_time(shop_db, tmp_path):
    """The replay engine tells no prefill from decode: the file has its load and generation
    seconds and the run's wall time, and nothing it did not measure."""
    stats = tmp_path / "sample.json"
    given = [dict(t, predictions="SELECT 1") for t in tasks(shop_db, 2)]
    r = run("rf-sample", ["--sampler", "replay", "-m", "x", "--stats", str(stats)],
            input=given)
    assert r.code == 0, r.stderr
    figures = orjson.loads(stats.read_bytes())
    assert figures["engine"] == "replay" and figures["tasks"] == 2
    assert figures["wall_s"] >= figures["load_s"] >= 0
    assert "prefill_s" not in figures and "decode_s" not in figures
    assert re.fullmatch(r"rf-sample: time: load [\d.]+ s, generation [\d.]+ s",
                        r.stderr.strip().splitlines()[-1])


def test_int8_weights_sample_on_a_cpu_and_are_off_by_default(tiny_model, shop_db, tmp_path):
    base = ["--sampler", "hf", "-m", tiny_model, "--max-new-tokens", "6"]
    plain = run("rf-sample", base, input=tasks(shop_db, 2))
    int8 = run("rf-sample", [*base, "-o", "quantize", "int8"], input=tasks(shop_db, 2))
    assert plain.code == 0 and int8.code == 0, plain.stderr + int8.stderr
    assert "quantized to int8" in int8.stderr and "quantized" not in plain.stderr
    assert [len(t["candidates"]) for t in int8.records] == [1, 1]
    bad = run("rf-sample", [*base, "-o", "quantize", "int4"], input=tasks(shop_db, 1))
    assert bad.code == 2 and "int4" in bad.stderr


def test_int8_on_a_gpu_is_a_usage_error():
    import torch

    from rf_core.api import BadOption
    from rf_plugins.hf import quantized_int8

    with pytest.raises(BadOption, match="CPU only"):
        quantized_int8(torch.nn.Linear(2, 2), torch.device("cuda"), lambda line: None)


FAKE_SAMPLE = r"""#!/usr/bin/env bash
# rf-sample's stand-in: every input line comes back with a candidate, and --stats is written
stats=
while (($#)); do [[ $1 == --stats ]] && stats=$2; shift; done
[[ -n $stats ]] && echo '{"engine": "fake", "load_s": 1.5, "prefill_s": 2.0}' > "$stats"
while IFS= read -r line; do echo "${line%\}},\"candidates\":[]}"; done
echo "rf-sample $*" >> "$CALLS"
"""
FAKE_OTHER = r"""#!/usr/bin/env bash
name=$(basename "$0")
case $name in
  rf-data) for i in 1 2 3; do
             printf '{"schema_version":1,"kind":"task","id":"%s/%s","question":"q?"}\n' "$5" "$i"
           done ;;
  rf-report) echo "# report" > "$1/report.md" ;;
  rf-eval|rf-train) echo '{}' ;;
  rf-filter|rf-inject) cat > /dev/null ;;
  *) cat ;;
esac
"""


def test_the_loop_samples_dev_and_val_in_one_call_and_splits_them(tmp_path):
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for name in ("rf-data", "rf-sample", "rf-exec", "rf-vote", "rf-eval", "rf-filter",
                 "rf-inject", "rf-train", "rf-report", "rf-model"):
        (bin_dir / name).write_text(FAKE_SAMPLE if name == "rf-sample" else FAKE_OTHER)
        (bin_dir / name).chmod(0o755)
    env = {"PATH": f"{bin_dir}:/usr/bin:/bin", "CALLS": str(tmp_path / "calls")}
    out = tmp_path / "run"
    r = subprocess.run(["bash", str(ROOT / "bin" / "iterate.sh"), "--model", "fake",
                        "--iterations", "0", "--no-sft-baseline", "--dev-size", "3",
                        "--val-size", "3", "--out", str(out)], env=env, capture_output=True,
                       text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    row = out / "iter0"
    for split in ("dev", "val"):
        ids = [orjson.loads(line)["id"] for line in
               (row / f"{split}.greedy.sampled.jsonl").read_text().splitlines()]
        assert ids == [orjson.loads(line)["id"] for line in
                       (out / "data" / f"{split}.jsonl").read_text().splitlines()]
    assert len((tmp_path / "calls").read_text().splitlines()) == 1  # one rf-sample call
    stages = [line.split("\t")[1] for line in
              (out / "timings.tsv").read_text().splitlines()[1:]]
    assert "greedy-sample" in stages and "val-greedy-sample" not in stages
    assert re.search(r"^iterate\.sh: wall time \d+m\d\ds; stage time in .*timings\.tsv "
                     r"\d+m\d\ds$", r.stdout, re.M)

    from rf_core.report.history import build_history

    history = build_history(out)
    assert history["iterations"][0]["sampling"] == {
        "greedy": {"engine": "fake", "load_s": 1.5, "prefill_s": 2.0}}


def test_a_short_sampled_file_stops_the_split(tmp_path):
    """A sampled file with fewer lines than dev and val together is not split: the stage
    fails, naming the file."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for name in ("rf-data", "rf-sample", "rf-exec", "rf-vote", "rf-eval", "rf-filter",
                 "rf-inject", "rf-train", "rf-report", "rf-model"):
        body = FAKE_OTHER if name != "rf-sample" else (
            "#!/usr/bin/env bash\nhead -n 2\n")  # drops lines
        (bin_dir / name).write_text(body)
        (bin_dir / name).chmod(0o755)
    env = {"PATH": f"{bin_dir}:/usr/bin:/bin"}
    out = tmp_path / "run"
    r = subprocess.run(["bash", str(ROOT / "bin" / "iterate.sh"), "--model", "fake",
                        "--iterations", "0", "--no-sft-baseline", "--dev-size", "3",
                        "--val-size", "3", "--out", str(out)], env=env, capture_output=True,
                       text=True, timeout=60)
    assert r.returncode != 0
    assert "greedy.sampled.jsonl has 2 lines, not 3 + 3" in r.stderr
    assert not (out / "iter0" / "dev.greedy.sampled.jsonl").exists()
