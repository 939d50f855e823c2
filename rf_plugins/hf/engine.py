"""Batched sampling of k completions per prompt, engineered for throughput.

Where plain ``generate`` loses (measured: about 80% of decode steps went to sequences that had
already finished, and ``num_return_sequences`` prefilled every prompt k times):
- each prompt is prefilled once; its KV cache is then repeated for its k samples;
- prompts that share a long prefix (the same system prompt and database schema, another
  question) prefill that prefix once per batch and only their own suffix after it;
- finished sequences are dropped from the batch (cache rows, masks, positions) once a
  fraction of the batch has finished, so the batch shrinks instead of idling to its longest;
- prompts are sorted by length and batched under a token budget, so little goes to padding;
- sampling, stop detection, lengths and logprob sums stay on the device, without an op that
  waits for the device (no ``multinomial``, ``.item()``, ``nonzero`` or boolean indexing in a
  decode step): the host looks at the batch only every ``check_every`` steps (one small
  transfer); a model on sdpa attention gets a ready 4D mask each step, so transformers' own
  mask building does not read the mask on the host either;
- a decode step's attention runs each key/value head against its group of query heads
  (``_gqa_sdpa``) instead of copying keys and values once per query head, which transformers
  5.17 does in every layer whenever a padding mask is present;
- the cache is copied once after the prefill into room for the whole answer (``_reserve``),
  and a step writes its keys and values in place instead of concatenating (copying) the
  whole cache.

Left as is: each of the k samples holds its own copy of its prompt's keys and values (sharing
them needs an attention that reads a prompt's cache once for its k rows).
"""

from __future__ import annotations

import inspect
import time
from contextlib import contextmanager
from dataclasses import dataclass, replace
from functools import lru_cache
from typing import Callable

import torch

from rf_core.api import Generation


@dataclass
class SamplingConfig:
    k: int = 1
    temperature: float = 0.0
    top_p: float = 1.0
    max_new_tokens: int = 256
    seed: int = 0
    stop_ids: tuple[int, ...] = ()
    pad_id: int = 0
    check_every: int = 4        # steps between host checks of the finished mask
    share_at: float = 0.5       # prompts sharing this share of their tokens share one prefill
                                # (above 1: no sharing)
    compact_at: float = 0.125   # drop finished rows once this share of the batch has finished

    @property
    def greedy(self) -> bool:
        return self.temperature <= 0.0


@dataclass
class Stats:
    prompts: int = 0
    sequences: int = 0
    new_tokens: int = 0
    prompt_tokens: int = 0
    prefill_tokens: int = 0     # prompt tokens actually run (shared prefixes count once)
    decode_steps: int = 0
    row_steps: int = 0          # sum over steps of rows computed (the cost of decoding)
    seconds: float = 0.0
    batches: int = 0
    prefill_s: float = 0.0      # running the prompts (shared prefixes, then suffixes)
    decode_s: float = 0.0       # the decoding steps after them, until the batch is done

    def add_batch(self, prompts: list[list[int]], k: int, prefilled: int, new_tokens: int,
                  steps: int, row_steps: int, prefill_s: float, decode_s: float) -> None:
        """Count one batch of ``prompts`` x ``k``."""
        self.batches += 1
        self.prompts += len(prompts)
        self.sequences += len(prompts) * k
        self.prompt_tokens += sum(map(len, prompts))
        self.prefill_tokens += prefilled
        self.new_tokens += new_tokens
        self.decode_steps += steps
        self.row_steps += row_steps
        self.prefill_s += prefill_s
        self.decode_s += decode_s

    def phases(self) -> dict:
        """Where the sampling time went: prefill (prompt tokens run) and decode (new tokens),
        the figures of rf-sample's summary line and of its --stats file."""
        return {"prefill_s": round(self.prefill_s, 3), "prefill_tokens": self.prefill_tokens,
                "prompt_tokens": self.prompt_tokens, "decode_s": round(self.decode_s, 3),
                "new_tokens": self.new_tokens, "batches": self.batches}


def _sample_next(logits: torch.Tensor, cfg: SamplingConfig, gen: torch.Generator | None):
    """Next tokens and their log-probabilities under the model (temperature 1).

    Sampling is the exponential race that ``torch.multinomial(probs, 1)`` itself runs
    (argmax of ``probs / q``, ``q ~ Exp(1)`` drawn from ``gen``), so the same seed gives the
    same tokens, without multinomial's checks of ``probs`` on the host (two syncs a step)."""
    logprobs = torch.log_softmax(logits.float(), dim=-1)
    if cfg.greedy:
        tok = logprobs.argmax(dim=-1)
    else:
        scaled = logits.float() / cfg.temperature
        probs = torch.softmax(scaled, dim=-1)
        if cfg.top_p < 1.0:
            sorted_p, order = probs.sort(dim=-1, descending=True)
            keep = sorted_p.cumsum(dim=-1) - sorted_p < cfg.top_p  # always keeps the first
            sorted_p = sorted_p * keep
            probs = torch.zeros_like(probs).scatter_(-1, order, sorted_p)
        race = torch.empty_like(probs).exponential_(1, generator=gen)
        tok = (probs / race).argmax(dim=-1)
    return tok, logprobs.gather(-1, tok.unsqueeze(-1)).squeeze(-1)


GQA_ATTENTION = "rf_gqa_sdpa"


def _gqa_sdpa(module, query, key, value, attention_mask, dropout=0.0, scaling=None,
              is_causal=None, **kwargs):
    """transformers' sdpa attention, except for one query token with grouped KV heads: there
    each KV head's group of query heads runs as that head's queries, so keys and values are
    read in place. (Under a mask, transformers 5.17 copies them once per query head in every
    layer at every step; 5.24 does what this does.)"""
    from transformers.integrations.sdpa_attention import sdpa_attention_forward

    groups = getattr(module, "num_key_value_groups", 1)
    # without a mask transformers already runs sdpa's own GQA (enable_gqa), copying nothing
    if (query.shape[2] != 1 or groups == 1 or attention_mask is None
            or kwargs.get("position_bias") is not None
            or kwargs.get("softcap") is not None or kwargs.get("output_attentions")):
        return sdpa_attention_forward(module, query, key, value, attention_mask, dropout=dropout,
                                      scaling=scaling, is_causal=is_causal, **kwargs)
    batch, heads, _, dim = query.shape
    query = query.reshape(batch, heads // groups, groups, dim)
    if attention_mask is not None and attention_mask.shape[1] != 1:  # one mask per head
        attention_mask = attention_mask.reshape(batch, heads // groups, groups, -1)
    out = torch.nn.functional.scaled_dot_product_attention(
        query, key, value, attn_mask=attention_mask, dropout_p=dropout, scale=scaling,
        is_causal=False)
    return out.reshape(batch, heads, 1, value.shape[-1]).transpose(1, 2).contiguous(), None


def _register_gqa_attention() -> None:
    from transformers import AttentionInterface
    from transformers.masking_utils import AttentionMaskInterface, sdpa_mask

    AttentionInterface.register(GQA_ATTENTION, _gqa_sdpa)
    AttentionMaskInterface.register(GQA_ATTENTION, sdpa_mask)


@contextmanager
def gqa_attention(model):
    """While inside: a model that runs transformers' sdpa attention with full attention in
    every layer runs ``_gqa_sdpa`` instead (the same but for decode steps). Yields whether it
    does: only then may a decode step pass a 4D boolean mask."""
    config = getattr(model, "config", None)
    before = getattr(config, "_attn_implementation", None)
    layer_types = set(getattr(config, "layer_types", None) or ["full_attention"])
    if before not in ("sdpa", GQA_ATTENTION) or layer_types != {"full_attention"}:
        yield False
        return
    _register_gqa_attention()
    config._attn_implementation = GQA_ATTENTION
    try:
        yield True
    finally:
        config._attn_implementation = before


def _reserve(cache, repeats: int, room: int) -> None:
    """Repeat each row of ``cache`` ``repeats`` times and give every layer room for ``room``
    more tokens, in one copy: a decode step then writes its keys and values in place, where a
    growing cache copies itself whole (``torch.cat``) at every step. A layer's keys and values
    stay views of exactly its cached tokens, so attention sees what it saw before, bit for bit.
    Layers of another kind (sliding windows...) only repeat."""
    layers = getattr(cache, "layers", None)
    if layers is None:
        cache.batch_repeat_interleave(repeats)
        return
    reserved = _reserved_layer()
    for layer in layers:
        keys = getattr(layer, "keys", None)
        if (type(layer) is not reserved.__base__ or keys is None or keys.dim() != 4
                or keys.shape[-2] == 0):
            layer.batch_repeat_interleave(repeats)
            continue
        rows, heads, n, dim = keys.shape
        buffers = []
        for old in (layer.keys, layer.values):
            buf = old.new_empty((rows * repeats, heads, n + room, dim))
            buf.view(rows, repeats, heads, n + room, dim)[:, :, :, :n] = old[:, None]
            buffers.append(buf)
        layer.__class__ = reserved
        layer.room = tuple(buffers)
        layer.keys, layer.values = (b[:, :, :n] for b in buffers)


@lru_cache(maxsize=None)
def _reserved_layer():
    """transformers' growing cache layer, writing into room reserved ahead (see _reserve)."""
    from transformers.cache_utils import DynamicLayer

    class ReservedLayer(DynamicLayer):
        room: tuple  # the reserved buffers, keys' then values' (set by _reserve)

        def _keeps_room(self) -> bool:  # still our view (not reset, reordered...)
            return (self.keys is not None and self.keys.data_ptr() == self.room[0].data_ptr()
                    and self.keys.shape[0] == self.room[0].shape[0])

        def _grow(self):
            self.__class__ = DynamicLayer  # an ordinary layer again: concatenates
            del self.room
            return self

        def update(self, key_states, value_states, *args, **kwargs):
            if (not self._keeps_room()
                    or self.keys.shape[-2] + key_states.shape[-2] > self.room[0].shape[-2]):
                return self._grow().update(key_states, value_states, *args, **kwargs)
            n, new = self.keys.shape[-2], key_states.shape[-2]
            keys, values = self.room
            keys[:, :, n:n + new] = key_states
            values[:, :, n:n + new] = value_states
            self.keys, self.values = keys[:, :, :n + new], values[:, :, :n + new]
            return self.keys, self.values

        def batch_select_indices(self, indices: torch.Tensor) -> None:
            if not self._keeps_room():
                return self._grow().batch_select_indices(indices)
            n = self.keys.shape[-2]
            self.room = tuple(b.index_select(0, indices) for b in self.room)
            self.keys, self.values = (b[:, :, :n] for b in self.room)

    return ReservedLayer


def _host_look(done: torch.Tensor) -> list[bool]:
    """The finished mask on the host: the decode loop's only transfer (one every few steps)."""
    return done.tolist()


@lru_cache(maxsize=None)
def _cache_kwarg(forward) -> str:
    """transformers 5.24 renamed ``past_key_values`` to ``cache``; 5.17 has only the old name."""
    params = inspect.signature(forward).parameters
    return "cache" if "cache" in params else "past_key_values"


def _left_pad(prompts: list[list[int]], pad_id: int, device) -> tuple[torch.Tensor, torch.Tensor]:
    width = max(len(p) for p in prompts)
    ids = torch.full((len(prompts), width), pad_id, dtype=torch.long)
    mask = torch.zeros((len(prompts), width), dtype=torch.long)
    for i, p in enumerate(prompts):
        ids[i, width - len(p):] = torch.tensor(p, dtype=torch.long)
        mask[i, width - len(p):] = 1
    return ids.to(device), mask.to(device)


def common_prefix(a: list[int], b: list[int]) -> int:
    n = min(len(a), len(b))
    i = 0
    while i < n and a[i] == b[i]:
        i += 1
    return i


def prefix_groups(prompts: list[list[int]], share_at: float) -> list[list[int]]:
    """Indices of prompts grouped by a shared prefix: in sorted order, neighbours that share
    at least ``share_at`` of the shorter prompt's tokens are in one group (for Spider, the
    questions on one database). Groups and their members are in sorted order."""
    order = sorted(range(len(prompts)), key=lambda i: prompts[i])
    groups: list[list[int]] = []
    previous: list[int | None] = [None, *order]
    for prev, i in zip(previous, order):
        if prev is not None and common_prefix(prompts[prev], prompts[i]) >= share_at * min(
                len(prompts[prev]), len(prompts[i])):
            groups[-1].append(i)
        else:
            groups.append([i])
    return groups


def _cache_of(out):
    # transformers 5.24 names the output's cache `cache`; 5.17 only `past_key_values`
    return out.cache if "cache" in out.keys() else out.past_key_values


def _forward(model, seqs: list[list[int]], cfg: SamplingConfig, device, cache_arg: str,
             past=None):
    """One left-padded forward of ``seqs``, on top of ``past`` = (cache, its mask) if given.
    Returns the last logits, the cache, the full mask and the next positions; positions
    count only real tokens."""
    ids, mask = _left_pad(seqs, cfg.pad_id, device)
    extra = {}
    if past is not None:
        cache, past_mask = past
        mask = torch.cat([past_mask, mask], dim=1)
        extra[cache_arg] = cache
    positions = (mask.cumsum(-1) - 1).clamp(min=0)[:, -ids.shape[1]:]
    out = model(input_ids=ids, attention_mask=mask, position_ids=positions, use_cache=True,
                logits_to_keep=1, **extra)
    return out.logits[:, -1, :], _cache_of(out), mask, positions[:, -1] + 1


def _prefill(model, prompts: list[list[int]], cfg: SamplingConfig, device, cache_arg: str):
    """Run the prompts; return what ``_forward`` returns, how many tokens were run, and (on the
    host) whether each row's mask has padding.

    Without shared prefixes: one left-padded forward. With them: each group's shared prefix
    runs once (the prefixes left-padded together), its cache rows are copied to the group's
    prompts, and the suffixes run on top. A row's mask is then ``[pad, prefix, pad, suffix]``,
    so each prompt is seen exactly as it would be alone."""
    groups = [g for g in prefix_groups(prompts, cfg.share_at) if len(g) > 1]
    if not groups:
        width = max(map(len, prompts))
        return (*_forward(model, prompts, cfg, device, cache_arg), sum(map(len, prompts)),
                [len(p) < width for p in prompts])
    # a prompt in no group is its own prefix (all but its last token)
    prefixes = [p[:-1] for p in prompts]
    row_of = list(range(len(prompts)))
    for g in groups:
        # keep at least one suffix token per prompt: its logits start the answer
        shared = min(min(common_prefix(prompts[g[0]], prompts[i]) for i in g),
                     min(len(prompts[i]) for i in g) - 1)
        for i in g:
            prefixes[i] = prompts[i][:shared]
            row_of[i] = g[0]
    distinct = sorted(set(row_of))
    _, cache, prefix_mask, _ = _forward(model, [prefixes[r] for r in distinct], cfg, device,
                                        cache_arg)
    slot = {r: j for j, r in enumerate(distinct)}
    rows = torch.tensor([slot[r] for r in row_of], device=device)
    cache.batch_select_indices(rows)  # one copy of its prefix per prompt
    suffixes = [p[len(prefixes[i]):] for i, p in enumerate(prompts)]
    out = _forward(model, suffixes, cfg, device, cache_arg, past=(cache, prefix_mask[rows]))
    prefilled = sum(len(prefixes[r]) for r in distinct) + sum(map(len, suffixes))
    pre_width = max(len(prefixes[r]) for r in distinct)
    suf_width = max(map(len, suffixes))
    padded = [len(prefixes[r]) < pre_width or len(x) < suf_width
              for r, x in zip(row_of, suffixes)]
    return (*out, prefilled, padded)


@torch.inference_mode()
def sample_batch(model, prompts: list[list[int]], cfg: SamplingConfig,
                 gen: torch.Generator | None, stats: Stats | None = None,
                 token_budget: int | None = None,
                 on_step: Callable[[int, int, int], None] | None = None,
                 ) -> list[list[Generation]]:
    """k samples for each prompt of one batch; returns them grouped by prompt, in order.

    With ``token_budget``, a batch whose k samples per prompt exceed it runs prompt by prompt,
    and a prompt's k samples in as many runs as the budget needs (each prefills the prompt
    again), so the KV cache stays within the budget whatever k is. Greedy candidates do not
    depend on the split; sampled ones come from the one stream ``gen``, in run order.
    ``on_step(step, finished, rows)`` is called at each host check of the finished rows (every
    ``cfg.check_every`` decoding steps), so a caller can show progress within a batch."""
    if token_budget is not None and len(prompts) * cfg.k * (
            max(map(len, prompts)) + cfg.max_new_tokens) > token_budget:
        if len(prompts) > 1:
            return [sample_batch(model, [p], cfg, gen, stats, token_budget, on_step)[0]
                    for p in prompts]
        chunks = sample_chunks(len(prompts[0]), cfg.k, cfg.max_new_tokens, token_budget)
        if len(chunks) > 1:
            return [[s for n in chunks
                     for s in sample_batch(model, prompts, replace(cfg, k=n), gen, stats,
                                           on_step=on_step)[0]]]
    with gqa_attention(model) as mask_4d:
        return _sample_batch(model, prompts, cfg, gen, stats, mask_4d, on_step)


def _synced(device) -> float:
    """The clock once ``device`` has done its queued work (a GPU runs ahead of the host), so
    the prefill and decode times of a batch are the device's."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    return time.perf_counter()


def _sample_batch(model, prompts, cfg, gen, stats, mask_4d: bool, on_step=None):
    device = next(model.parameters()).device
    k = cfg.k
    n_prompts = len(prompts)
    base = model.get_base_model() if hasattr(model, "get_base_model") else model
    cache_arg = _cache_kwarg(type(base).forward)
    began = _synced(device)
    logits, cache, mask, next_pos, prefilled, padded = _prefill(model, prompts, cfg, device,
                                                                cache_arg)
    prefilled_at = _synced(device)
    mask = mask.bool()
    padded = [p for p in padded for _ in range(k)]  # per batch row, known on the host
    if k > 1:  # one prefill per prompt, then k copies of its cache
        rep = torch.arange(n_prompts, device=device).repeat_interleave(k)
        logits, mask, next_pos = logits[rep], mask[rep], next_pos[rep]
    _reserve(cache, k, cfg.max_new_tokens - 1)  # the k copies, with room for the answers
    n_seq = n_prompts * k
    rows = torch.arange(n_seq, device=device)        # which sequence each batch row holds
    tokens = torch.full((cfg.max_new_tokens, n_seq), cfg.pad_id, dtype=torch.long,
                        device=device)               # step-major: a step writes one row
    logp = torch.zeros(n_seq, dtype=torch.float32, device=device)
    lengths = torch.full((n_seq,), cfg.max_new_tokens, dtype=torch.long, device=device)
    done = torch.zeros(n_seq, dtype=torch.bool, device=device)  # per batch row
    stop = torch.tensor(cfg.stop_ids or [-1], device=device)
    steps = row_steps = 0
    # Nothing in a step waits for the device: rows are written through index ops, never
    # through a boolean index (whose size the host would have to learn).
    for step in range(cfg.max_new_tokens):
        tok, lp = _sample_next(logits, cfg, gen)
        live = ~done
        tokens[step].index_copy_(0, rows, torch.where(live, tok, cfg.pad_id))
        logp.index_add_(0, rows, torch.where(live, lp, 0.0))
        hit = live & (tok.unsqueeze(-1) == stop).any(dim=-1)
        lengths.index_copy_(0, rows, torch.where(hit, step, lengths.index_select(0, rows)))
        done |= hit
        steps += 1
        row_steps += len(done)
        if step == cfg.max_new_tokens - 1:
            break
        if (step + 1) % cfg.check_every == 0:
            done_h = _host_look(done)
            n_done = sum(done_h)
            if on_step is not None:
                on_step(step + 1, n_done + n_seq - len(done_h), n_seq)
            if n_done == len(done_h):
                break
            if n_done >= cfg.compact_at * len(done_h):
                kept = [i for i, d in enumerate(done_h) if not d]
                padded = [padded[i] for i in kept]
                keep = torch.tensor(kept, device=device)
                cache.batch_select_indices(keep)
                rows, mask, next_pos, done, tok = (rows[keep], mask[keep], next_pos[keep],
                                                   done[keep], tok[keep])
        mask = torch.cat([mask, mask.new_ones((mask.shape[0], 1))], dim=1)
        # no row padded: no mask at all (what transformers makes of an all-ones mask, after
        # reading it on the host), so attention may take its unmasked (flash) path
        attention_mask = (None if not any(padded) else
                          mask[:, None, None, :] if mask_4d else mask)
        out = model(input_ids=tok.unsqueeze(-1), attention_mask=attention_mask,
                    position_ids=next_pos.unsqueeze(-1), use_cache=True, **{cache_arg: cache})
        logits = out.logits[:, -1, :]
        next_pos = next_pos + 1
    tokens_h, lengths_h, logp_h = tokens.t().cpu(), lengths.cpu(), logp.cpu()
    decoded_at = time.perf_counter()  # .cpu() waited for the device
    finished_h = lengths_h < cfg.max_new_tokens
    samples = []
    for i in range(n_seq):
        n = int(lengths_h[i])
        samples.append(Generation(tokens_h[i, :n].tolist(), float(logp_h[i]), bool(finished_h[i])))
    if stats is not None:
        stats.add_batch(prompts, k, prefilled, int(lengths_h.sum()) + int(finished_h.sum()),
                        steps, row_steps, prefilled_at - began, decoded_at - prefilled_at)
    return [samples[i * k:(i + 1) * k] for i in range(n_prompts)]


def sample_chunks(prompt_len: int, k: int, max_new_tokens: int, token_budget: int) -> list[int]:
    """How many of a prompt's k samples each run takes so that a run's KV footprint (samples
    x (prompt + max_new_tokens)) stays within ``token_budget``: [k] when they fit together;
    one sample a run at least."""
    per = max(1, token_budget // (prompt_len + max_new_tokens))
    return [min(per, k - start) for start in range(0, k, per)]


# Samples a window holds until its tasks are written (each up to max_new_tokens ids): with a
# large k, fewer tasks per window. 1024 tasks x 256 samples, the defaults' most, still fit.
MAX_HELD_SAMPLES = 1 << 18


def window_for(window: int, k: int) -> int:
    """Tasks read ahead and planned together: ``window``, or fewer when k is large."""
    return max(1, min(window, MAX_HELD_SAMPLES // max(k, 1)))


def plan_batches(prompts: list[list[int]], k: int, max_new_tokens: int, token_budget: int,
                 max_prompts: int, share_at: float = 0.5) -> list[list[int]]:
    """Indices grouped into batches, each batch's KV footprint (prompts x k x (longest
    prompt + max_new_tokens)) within ``token_budget``.

    Prompts with a shared prefix come first, group after group, so a batch holds few groups
    and prefills each group's prefix once; the other prompts follow in batches of their own,
    sorted by length so little goes to padding."""
    groups = prefix_groups(prompts, share_at)
    shared = [i for g in groups if len(g) > 1 for i in sorted(g, key=lambda i: len(prompts[i]))]
    alone = sorted((g[0] for g in groups if len(g) == 1), key=lambda i: len(prompts[i]))
    batches = []
    for order in (shared, alone):
        current: list[int] = []
        width = 0
        for i in order:
            wider = max(width, len(prompts[i]) + max_new_tokens)
            if current and ((len(current) + 1) * k * wider > token_budget
                            or len(current) >= max_prompts):
                batches.append(current)
                current, wider = [], len(prompts[i]) + max_new_tokens
            current.append(i)
            width = wider
        if current:
            batches.append(current)
    return batches


def token_budget(model, device: torch.device, max_new_tokens: int, fraction: float = 0.6,
                 cpu_budget: int = 16_384) -> int:
    """How many cached tokens fit: on a GPU from free memory and the model's KV bytes per
    token; on a CPU a fixed budget (there, batches larger than a few dozen rows do not pay)."""
    if device.type != "cuda":
        return cpu_budget
    cfg = model.config
    layers = cfg.num_hidden_layers
    kv_heads = getattr(cfg, "num_key_value_heads", None) or cfg.num_attention_heads
    head_dim = getattr(cfg, "head_dim", None) or cfg.hidden_size // cfg.num_attention_heads
    elem = torch.finfo(next(model.parameters()).dtype).bits // 8
    per_token = 2 * layers * kv_heads * head_dim * elem
    free, _ = torch.cuda.mem_get_info(device)
    return max(1024, int(free * fraction / per_token))

