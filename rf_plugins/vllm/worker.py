"""Runs inside the subprocess the vllm sampler starts: one vLLM engine, one generate call."""

from __future__ import annotations

import argparse
import sys

import orjson


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="rf_plugins.vllm.worker")
    ap.add_argument("--model", required=True)
    ap.add_argument("--adapter")
    ap.add_argument("--job", required=True)
    ap.add_argument("--out", required=True)
    ap.add_argument("-k", type=int, default=1)
    ap.add_argument("--temperature", type=float, default=0.0)
    ap.add_argument("--top-p", type=float, default=1.0)
    ap.add_argument("--max-new-tokens", type=int, default=256)
    ap.add_argument("--tensor-parallel-size", type=int, default=1)
    args = ap.parse_args(argv)

    from transformers import AutoTokenizer
    from vllm import LLM, SamplingParams
    from vllm.inputs import TokensPrompt

    from rf_core.api import encode_prompt, end_of_turn_ids

    jobs = [orjson.loads(line) for line in open(args.job, "rb") if line.strip()]
    tok = AutoTokenizer.from_pretrained(args.model)
    stops = end_of_turn_ids(tok)
    import torch

    # On the CPU backend this fraction reserves host memory for the KV cache.
    memory = 0.85 if torch.cuda.is_available() else 0.25
    llm_kwargs = {"model": args.model, "tensor_parallel_size": args.tensor_parallel_size,
                  "seed": 0, "enable_prefix_caching": True, "gpu_memory_utilization": memory}
    lora = None
    if args.adapter:
        import json
        from pathlib import Path

        from vllm.lora.request import LoRARequest

        rank = json.loads((Path(args.adapter) / "adapter_config.json").read_text())["r"]
        llm_kwargs.update(enable_lora=True, max_lora_rank=max(8, rank), max_loras=1)
        lora = LoRARequest("adapter", 1, args.adapter)
    llm = LLM(**llm_kwargs)
    prompts = [TokensPrompt(prompt_token_ids=encode_prompt(tok, j["messages"])) for j in jobs]
    params = [SamplingParams(n=args.k, temperature=args.temperature, top_p=args.top_p,
                             max_tokens=args.max_new_tokens, seed=j["seed"],
                             stop_token_ids=stops, logprobs=0) for j in jobs]
    results = llm.generate(prompts, params, lora_request=lora, use_tqdm=False)
    with open(args.out, "wb") as fh:
        for res in results:
            cands = []
            for c in res.outputs:
                cands.append({"text": c.text, "n_tokens": len(c.token_ids),
                              "logprob": None if c.cumulative_logprob is None
                              else round(float(c.cumulative_logprob), 4),
                              "finished": c.finish_reason == "stop"})
            fh.write(orjson.dumps(cands) + b"\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
