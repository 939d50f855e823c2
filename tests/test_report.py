"""rf-report: EX with intervals, the difference from the base model, every matcher."""

from __future__ import annotations

import json

from rf_core.commands import report as report_cmd
from click.testing import CliRunner

from conftest import make_task, run

GOLD = "SELECT count(*) FROM product"


def _iteration(run_dir, i, shop_db, n_right):
    tasks = [make_task(shop_db, GOLD, [GOLD if k < n_right else "SELECT 0"], id=f"r/{k}")
             for k in range(20)]
    executed = run("rf-exec", input=tasks).stdout
    folder = run_dir / f"iter{i}"
    folder.mkdir(parents=True)
    (folder / "dev.greedy.jsonl").write_bytes(executed)
    (folder / "dev.greedy.report.json").write_bytes(run("rf-eval", input=executed).stdout)
    sampled = [make_task(shop_db, GOLD, ["SELECT 0", GOLD if k < n_right else "SELECT 1"],
                         id=f"r/{k}") for k in range(20)]
    voted = run("rf-vote", input=run("rf-exec", input=sampled).stdout).stdout
    (folder / "dev.vote.report.json").write_bytes(run("rf-eval", input=voted).stdout)


def test_report_shows_intervals_and_the_difference_from_the_base(shop_db, tmp_path):
    run_dir = tmp_path / "run"
    _iteration(run_dir, 0, shop_db, 6)
    _iteration(run_dir, 1, shop_db, 14)
    (run_dir / "config.env").write_text("MODEL=m\nDATASET=demo\nVOTE=2\n")
    result = CliRunner().invoke(report_cmd.cli, [str(run_dir), "--no-plots"],
                                catch_exceptions=False)
    assert result.exit_code == 0, result.stderr
    history = json.loads((run_dir / "history.json").read_text())
    base, first = (it["dev"]["greedy"] for it in history["iterations"])
    assert base["ex"] == 30.0 and base["ex_ci95"] == [14.55, 51.9]
    assert "outcomes" not in base and "vs_base" not in base
    vs = first["vs_base"]
    assert (vs["tasks"], vs["diff"], vs["won"], vs["lost"]) == (20, 40.0, 8, 0)
    assert vs["diff_ci95"][0] > 0 and vs["mcnemar_p"] == round(2 / 2 ** 8, 6)
    text = (run_dir / "report.md").read_text()
    assert "| 0 (base) |  |  | 30.0% [14.6, 51.9] |" in text
    assert f"70.0% [48.1, 85.5]; +40.0 [+{vs['diff_ci95'][0]:.1f}, " in text
    assert ("| iteration | official (greedy) | official-keep-distinct (greedy) | "
            "lenient (greedy) | official (vote) |") in text
    # the vote ties 1-1 and goes to the first candidate, wrong; pass@2 counts the second
    assert "| 1 | 70.0% [48.1, 85.5] | " in text and "0.0% [0.0, 16.1]; pass@2 70.0% |" in text


def test_report_counts_train_candidates_the_variants_rejected(shop_db, tmp_path):
    run_dir = tmp_path / "run"
    _iteration(run_dir, 0, shop_db, 6)
    train = [make_task(shop_db, GOLD, [GOLD, "SELECT 5"], id=f"t/{k}") for k in range(3)]
    executed = run("rf-exec", ["-o", "variants", "2", "-o", "variants_dir",
                               str(tmp_path / "cache")], input=train)
    assert executed.code == 0, executed.stderr
    (run_dir / "iter1").mkdir()
    (run_dir / "iter1" / "train.jsonl").write_bytes(executed.stdout)
    result = CliRunner().invoke(report_cmd.cli, [str(run_dir), "--no-plots"],
                                catch_exceptions=False)
    assert result.exit_code == 0, result.stderr
    history = json.loads((run_dir / "history.json").read_text())
    assert history["iterations"][1]["train"]["variants"] == {"n": 2, "checked": 6, "rejected": 3}
    assert "the 2 database variants turned 3 of 6 train candidates from correct to wrong" in \
        (run_dir / "report.md").read_text()
