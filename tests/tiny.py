"""A tiny random chat model, built at test time: a BPE tokenizer trained on SQL-ish text with
a ChatML template, and a 2-layer Qwen2 model. No network, no hub."""

from __future__ import annotations

from pathlib import Path

CHATML = (
    "{% for message in messages %}{{ '<|im_start|>' + message['role'] + '\\n' + "
    "message['content'] + '<|im_end|>' + '\\n' }}{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}"
)

CORPUS = [
    "SELECT name FROM product WHERE price > 1", "SELECT count(*) FROM customer",
    "You are an expert in SQLite. Given a database schema and a question, write one SQLite "
    "query that answers the question. Reply with the SQL query only, in a ```sql code block.",
    "Database schema: CREATE TABLE product (id INTEGER PRIMARY KEY, name TEXT, price REAL)",
    "Question: How many customers are there? Which products cost more than one euro?",
    "```sql\nSELECT avg(price) FROM product GROUP BY category HAVING count(*) > 2\n```",
    "SELECT T1.name FROM customer AS T1 JOIN orders AS T2 ON T1.id = T2.customer_id",
    "e.g. 'fruit', 'bakery', 1, 2, 3 -- ORDER BY LIMIT DESC ASC INTERSECT UNION EXCEPT",
]


def build_tiny_model(folder: Path, seed: int = 0, arch: str = "qwen2") -> Path:
    """``arch="llama"`` gives head_dim 64, which vLLM's CPU attention supports."""
    import torch
    from tokenizers import Tokenizer, models, pre_tokenizers, trainers, decoders
    from transformers import (LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast,
                              Qwen2Config, Qwen2ForCausalLM)

    specials = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]
    tk = Tokenizer(models.BPE(unk_token=None))
    tk.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tk.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=400, special_tokens=specials,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    tk.train_from_iterator(CORPUS * 4, trainer)
    tok = PreTrainedTokenizerFast(tokenizer_object=tk, eos_token="<|im_end|>",
                                  pad_token="<|endoftext|>", chat_template=CHATML)
    torch.manual_seed(seed)
    # a wide initialisation, so that LoRA on the linear layers can move the logits far enough
    # to memorise a few completions (at 0.02 the frozen output layer keeps them near uniform)
    config = Qwen2Config(vocab_size=len(tok), hidden_size=64, intermediate_size=128,
                         num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2,
                         max_position_embeddings=4096, tie_word_embeddings=False,
                         eos_token_id=tok.eos_token_id, pad_token_id=tok.pad_token_id,
                         bos_token_id=None, initializer_range=0.3)
    if arch == "llama":
        config = LlamaConfig(vocab_size=len(tok), hidden_size=128, intermediate_size=256,
                             num_hidden_layers=2, num_attention_heads=2, num_key_value_heads=2,
                             max_position_embeddings=4096, tie_word_embeddings=False,
                             eos_token_id=tok.eos_token_id, pad_token_id=tok.pad_token_id,
                             bos_token_id=None, initializer_range=0.3)
        model = LlamaForCausalLM(config)
    else:
        model = Qwen2ForCausalLM(config)
    folder.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(folder)
    tok.save_pretrained(folder)
    return folder
