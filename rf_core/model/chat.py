"""Token ids for prompts and training examples, both through the model's chat template.

The sampler and the trainer call these two functions and nothing else, so the text a model is
trained on is exactly the text it is later prompted with.
"""

from __future__ import annotations

from typing import Any

from rf_core.errors import RFError


def prompt_text(tokenizer: Any, messages: list[dict]) -> str:
    """The prompt as text: ``messages`` through the tokenizer's chat template with the
    assistant turn opened (RFError when the tokenizer has no chat template)."""
    if not getattr(tokenizer, "chat_template", None):
        raise RFError("the model's tokenizer has no chat template")
    return tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)


def encode_prompt(tokenizer: Any, messages: list[dict]) -> list[int]:
    """The prompt as the model sees it: the chat template with the assistant turn opened."""
    return tokenizer(prompt_text(tokenizer, messages), add_special_tokens=False).input_ids


def encode_example(tokenizer: Any, messages: list[dict], completion: str,
                   end_of_turn: int) -> tuple[list[int], list[int]]:
    """(prompt ids, completion ids): the completion is the assistant turn, ended by the
    end-of-turn token that sampling stops at."""
    prompt = encode_prompt(tokenizer, messages)
    answer = tokenizer(completion, add_special_tokens=False).input_ids + [end_of_turn]
    return prompt, answer


def context_length(model: Any) -> int | None:
    """The model's context in tokens (its config's ``max_position_embeddings``), or None."""
    n = getattr(getattr(model, "config", None), "max_position_embeddings", None)
    return n if isinstance(n, int) and n > 0 else None


def over_context(tokenizer: Any, conversations: list[list[dict]], *, max_new_tokens: int,
                 context: int | None) -> list[str | None]:
    """For each conversation: None when its prompt plus ``max_new_tokens`` fits in
    ``context`` tokens (always, when the context is unknown), else why not in words."""
    if context is None:
        return [None] * len(conversations)
    out: list[str | None] = []
    for messages in conversations:
        n = len(encode_prompt(tokenizer, messages))
        out.append(None if n + max_new_tokens <= context else
                   f"the conversation is {n} prompt tokens; with {max_new_tokens} new tokens "
                   f"it passes the model's context of {context}")
    return out
