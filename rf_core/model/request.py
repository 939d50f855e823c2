"""What rf-sample asks of a sampler engine: one frozen request per run, and the conversations
it answers (exported by ``rf_core.api``)."""

from __future__ import annotations

from dataclasses import dataclass

# a conversation: the chat messages of one task's prompt, [{"role", "content"}, ...]
Conversation = list[dict]


@dataclass(frozen=True)
class SampleRequest:
    """What rf-sample asks of a sampler engine, the same for every conversation of one run.

    ``model``: rf-sample's --model (a folder, hub id, .gguf file or ``rf-model`` name);
    ``adapter``: a PEFT LoRA adapter folder or None; ``k``: answers per conversation;
    ``temperature`` (0: greedy), ``top_p``, ``max_new_tokens``; ``seed``: rf-sample's --seed
    (derive per-sample seeds with ``sample_seed(seed, first + i, j)``).
    """

    model: str
    adapter: str | None = None
    k: int = 1
    temperature: float = 0.0
    top_p: float = 1.0
    max_new_tokens: int = 256
    seed: int = 0
