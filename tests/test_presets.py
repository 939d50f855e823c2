"""The Spider presets' --max-len fits every example they can train on: the gold completion,
and any self-generated one up to --max-new-tokens. Measured with the Qwen2.5-Coder tokenizer
(from the rf-model cache) on the presets' own data."""

from __future__ import annotations

import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import run, spider_root

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent


def preset(name: str) -> dict:
    """The preset's rf-data train command, --max-len and --max-new-tokens, from --dry-run."""
    out = subprocess.run(["bash", str(ROOT / "bin" / "iterate.sh"), "--preset", name,
                          "--root", str(spider_root()), "--dry-run"],
                         capture_output=True, text=True, check=True).stdout
    data = next(line for line in out.splitlines() if "--split train" in line)
    train = next(line for line in out.splitlines() if line.startswith("rf-train "))
    sample = next(line for line in out.splitlines() if line.startswith("rf-sample "))
    return {"data": shlex.split(data.split(" > ")[0]),
            "max_len": int(re.search(r"--max-len (\d+)", train).group(1)),
            "max_new": int(re.search(r"--max-new-tokens (\d+)", sample).group(1))}


@pytest.fixture(scope="module")
def qwen_tokenizer():
    from rf_core.model.loading import cache_dir

    folder = cache_dir() / "models" / "qwen2.5-coder-0.5b" / "hf"
    if not (folder / "tokenizer.json").is_file():
        pytest.skip(f"the Qwen2.5-Coder tokenizer is not in the model cache ({folder}); "
                    "run `rf-model fetch qwen2.5-coder-0.5b` to run this test")
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(str(folder))


@pytest.mark.spider
@pytest.mark.parametrize("name", ["spider-h100", "spider-full"])
def test_every_example_fits_the_presets_max_len(name, spider, qwen_tokenizer):
    from rf_core.model.chat import encode_example
    from rf_core.model.loading import end_of_turn_id

    p = preset(name)
    tasks = subprocess.run([str(BIN / p["data"][0]), *p["data"][1:]], capture_output=True,
                           check=True).stdout
    examples = run("rf-inject", input=tasks).records  # no candidates: every task's gold
    assert len(examples) > 1000
    eot = end_of_turn_id(qwen_tokenizer)
    fence = len(qwen_tokenizer("```sql\n\n```")["input_ids"]) + 1  # and the end of turn
    longest = 0
    for ex in examples:
        prompt, answer = encode_example(qwen_tokenizer, ex["messages"], ex["completion"], eot)
        longest = max(longest, len(prompt) + max(len(answer), p["max_new"] + fence))
    assert longest <= p["max_len"], f"{name}: an example of {longest} tokens"
