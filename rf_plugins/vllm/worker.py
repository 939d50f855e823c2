"""The vllm sampler's worker: the only process that imports vLLM (rf_plugins.vllm starts it).

    python -m rf_plugins.vllm.worker run JOB OUT         start an engine, run one job, exit
    python -m rf_plugins.vllm.worker serve DIR SETTINGS  an engine taking jobs on DIR/engine.sock

A job is one JSON object: the engine ``settings`` (see ``llm_kwargs``), the ``sampling``
parameters, an ``adapter`` folder or null, and ``tasks``, each with its chat ``messages`` and
one seed per candidate in ``seeds``. Every candidate is a request of its own (n=1) with its own
seed: vLLM would give the children of one n=k request the seeds s, s+1, ..., s+k-1, which
neighbouring tasks with consecutive seeds share. Prefix caching computes the k copies of a
prompt (and the schema that tasks of one database share) once.

The answer to a job is one JSON object: ``answers`` (per task, per seed: text, logprob,
n_tokens, finished, seed), ``stats`` (generate seconds and token counts) and ``start_s`` (the
seconds the engine took to start). vLLM logs to stdout; the caller sends stdout and stderr to
one log file, where the root cause of a failure is found.
"""

from __future__ import annotations

import argparse
import os
import signal
import socket
import sys
import time
from pathlib import Path

import orjson

# vLLM's CPU backend: a fixed KV cache unless gpu_memory_utilization is given. A share of host
# memory (vLLM's meaning of that option on a CPU) would reserve gigabytes on a big machine and
# fail where other processes use memory; 2 GiB holds ~170k tokens of a 0.5B Qwen.
CPU_KV_CACHE_BYTES = 2 * 2**30
GPU_MEMORY_UTILIZATION = 0.85
DTYPES = {"bf16": "bfloat16", "fp16": "float16", "fp32": "float32"}  # vLLM's names
LORA_RANKS = (8, 16, 32, 64, 128, 256, 320, 512)  # the max_lora_rank values vLLM accepts


def llm_kwargs(settings: dict, *, cuda: bool) -> dict:
    """vLLM ``LLM(...)`` arguments for engine ``settings``: model, tensor_parallel_size,
    gpu_memory_utilization (None: default), max_model_len (None: the model's), dtype
    (auto|bf16|fp16|fp32), eager (auto|on|off) and lora_rank (0: no adapters)."""
    from rf_core.api import random_folder

    folder = random_folder(settings["model"])
    kwargs = {"model": str(folder or settings["model"]),
              "tensor_parallel_size": settings.get("tensor_parallel_size") or 1,
              "seed": 0, "enable_prefix_caching": True}
    if folder is not None:  # random:DIR: the architecture with vLLM's own dummy weights
        kwargs["load_format"] = "dummy"
    if settings.get("max_model_len"):
        kwargs["max_model_len"] = settings["max_model_len"]
    dtype = settings.get("dtype") or "auto"
    if dtype != "auto":
        kwargs["dtype"] = DTYPES[dtype]
    memory = settings.get("gpu_memory_utilization")
    if cuda:
        kwargs["gpu_memory_utilization"] = memory or GPU_MEMORY_UTILIZATION
    else:
        # A seeded request whose prompt is split by chunked prefill has its sampled token
        # discarded, and vLLM (GPUModelRunner._bookkeeping_sync) then rewinds its generator with
        # set_offset, which a CPU generator refuses ("CPU Generator does not use offset"): the
        # engine dies. Without chunked prefill no prompt is ever split (vLLM then makes
        # max_num_batched_tokens at least max_model_len, so any prompt fits in one step).
        kwargs["enable_chunked_prefill"] = False
        if memory is None:
            kwargs["kv_cache_memory_bytes"] = CPU_KV_CACHE_BYTES
        else:
            kwargs["gpu_memory_utilization"] = memory
    eager = settings.get("eager") or "auto"
    # torch.compile takes minutes on a few CPU cores, for little gain on small models
    kwargs["enforce_eager"] = eager == "on" or (eager == "auto" and not cuda)
    rank = settings.get("lora_rank") or 0
    if rank:
        fits = [r for r in LORA_RANKS if r >= rank]
        if not fits:
            raise ValueError(f"LoRA rank {rank} is above vLLM's largest, {LORA_RANKS[-1]}")
        kwargs.update(enable_lora=True, max_lora_rank=fits[0], max_loras=1)
    return kwargs


def request_params(sampling: dict, seeds: list[int], stops: list[int]) -> list[dict]:
    """``SamplingParams`` arguments for one task: one request per seed, n=1."""
    # ignore_eos: the stops are exactly the toolkit's end-of-turn ids (the eos token among
    # them), not also the ids a model's generation config lists, as for the other engines
    return [{"n": 1, "temperature": sampling["temperature"], "top_p": sampling["top_p"],
             "max_tokens": sampling["max_new_tokens"], "seed": seed,
             "stop_token_ids": stops, "ignore_eos": True, "logprobs": 0} for seed in seeds]


class Engine:
    """One vLLM engine; ``start_s`` is how long it took to start."""

    def __init__(self, settings: dict):
        began = time.perf_counter()
        import torch
        from transformers import AutoTokenizer
        from vllm import LLM

        from rf_core.api import end_of_turn_ids

        from rf_core.api import random_folder

        model = settings["model"]
        self.tokenizer = AutoTokenizer.from_pretrained(str(random_folder(model) or model))
        self.stops = end_of_turn_ids(self.tokenizer)
        self.llm = LLM(**llm_kwargs(settings, cuda=torch.cuda.is_available()))
        self.adapters: dict[tuple, object] = {}
        self.start_s = round(time.perf_counter() - began, 2)

    def lora(self, adapter: str | None):
        """A LoRARequest per adapter folder and version: vLLM caches adapters by id."""
        if not adapter:
            return None
        from vllm.lora.request import LoRARequest

        weights = sorted(Path(adapter).glob("adapter_model.*"))
        key = (adapter, *(p.stat().st_mtime_ns for p in weights))
        if key not in self.adapters:
            n = len(self.adapters) + 1
            self.adapters[key] = LoRARequest(f"adapter{n}", n, adapter)
        return self.adapters[key]

    def run(self, job: dict) -> dict:
        from vllm import SamplingParams
        from vllm.inputs import TokensPrompt

        from rf_core.api import Generation, decode_answers, encode_prompt

        prompts, params = [], []
        for task in job["tasks"]:
            ids = encode_prompt(self.tokenizer, task["messages"])
            for p in request_params(job["sampling"], task["seeds"], self.stops):
                prompts.append(TokensPrompt(prompt_token_ids=ids))
                params.append(SamplingParams(**p))
        # A prompt whose prefix an earlier job left in the cache is computed in another order,
        # and its floating-point differences change some samples: a kept engine starts each
        # job with an empty cache, as a fresh one does, so the same seed gives the same
        # candidates. Within a job the k copies of a prompt and shared schemas still hit it.
        if not self.llm.reset_prefix_cache():
            print("rf-vllm: warning: the prefix cache could not be reset", file=sys.stderr)
        began = time.perf_counter()
        outputs = self.llm.generate(prompts, params, lora_request=self.lora(job.get("adapter")),
                                    use_tqdm=False)
        seconds = time.perf_counter() - began
        stats = {"seconds": round(seconds, 3), "requests": len(outputs),
                 "prompt_tokens": sum(len(p["prompt_token_ids"]) for p in prompts),
                 "cached_tokens": sum(o.num_cached_tokens or 0 for o in outputs),
                 "generated_tokens": sum(len(c.token_ids) for o in outputs for c in o.outputs)}
        # text, n_tokens and finished from the token ids, as the other engines make them
        answers, it = [], iter(zip(outputs, params))
        for task in job["tasks"]:
            row = []
            for _ in task["seeds"]:
                out, p = next(it)
                c = out.outputs[0]
                row.append(Generation.from_ids(c.token_ids, c.cumulative_logprob, self.stops,
                                               seed=p.seed))
            answers.append(decode_answers(self.tokenizer, row))
        return {"answers": answers, "stats": stats, "start_s": self.start_s}


def run_once(job_path: str, out_path: str) -> int:
    job = orjson.loads(Path(job_path).read_bytes())
    engine = Engine(job["settings"])
    print(f"rf-vllm: engine started in {engine.start_s} s", file=sys.stderr, flush=True)
    Path(out_path).write_bytes(orjson.dumps(engine.run(job)))
    return 0


def recv_all(conn: socket.socket) -> bytes:
    """Everything the other end sends until it shuts its side (a job, or a reply)."""
    chunks = []
    while chunk := conn.recv(1 << 20):
        chunks.append(chunk)
    return b"".join(chunks)


def serve(folder: str, settings_json: str, idle: float, engine_class=Engine) -> int:
    """Start an engine, then answer jobs on FOLDER/engine.sock one at a time until SIGTERM
    (``rf-model stop FOLDER``), an engine error, or ``idle`` seconds without a job. FOLDER is
    an absolute path, on the command line (that is how ``rf-model stop`` knows the process)."""
    here = Path(folder)
    pid_file, info_file = here / "engine.pid", here / "engine.json"
    pid_file.write_text(f"{os.getpid()}\n")

    def stop(signum, frame):
        raise SystemExit(128 + signum)

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGHUP, stop)
    settings = orjson.loads(settings_json)
    listener = None
    try:
        engine = engine_class(settings)
        print(f"rf-vllm: engine started in {engine.start_s} s", file=sys.stderr, flush=True)
        # bound through the folder's descriptor: a Unix socket path is limited to ~107 bytes
        fd = os.open(here, os.O_RDONLY)
        (here / "engine.sock").unlink(missing_ok=True)
        listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        listener.bind(f"/proc/self/fd/{fd}/engine.sock")
        os.close(fd)
        listener.listen(8)
        listener.settimeout(idle)
        tmp = info_file.with_suffix(".json.tmp")
        tmp.write_bytes(orjson.dumps({"pid": os.getpid(), "settings": settings,
                                      "start_s": engine.start_s, "started": time.time()}))
        tmp.replace(info_file)
        while True:
            try:
                conn, _ = listener.accept()
            except socket.timeout:
                print(f"rf-vllm: idle for {idle:g} s, stopping", file=sys.stderr, flush=True)
                return 0
            with conn:
                conn.settimeout(None)
                job = orjson.loads(recv_all(conn))
                try:
                    reply = engine.run(job)
                except Exception as exc:  # the engine may be dead: answer, then exit
                    import traceback

                    traceback.print_exc()
                    conn.sendall(orjson.dumps({"error": f"{type(exc).__name__}: {exc}"}))
                    return 1
                try:
                    conn.sendall(orjson.dumps(reply))
                except OSError as exc:  # the caller went away (stopped): serve the next one
                    print(f"rf-vllm: could not answer: {exc}", file=sys.stderr, flush=True)
    finally:
        if listener is not None:
            listener.close()
        for path in (info_file, here / "engine.sock"):
            path.unlink(missing_ok=True)
        if pid_file.exists() and pid_file.read_text().strip() == str(os.getpid()):
            pid_file.unlink()


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="rf_plugins.vllm.worker")
    sub = ap.add_subparsers(dest="mode", required=True)
    once = sub.add_parser("run")
    once.add_argument("job")
    once.add_argument("out")
    server = sub.add_parser("serve")
    server.add_argument("folder")
    server.add_argument("settings")
    server.add_argument("--idle", type=float, default=900)
    args = ap.parse_args(argv)
    if args.mode == "run":
        return run_once(args.job, args.out)
    return serve(args.folder, args.settings, args.idle)


if __name__ == "__main__":
    sys.exit(main())
