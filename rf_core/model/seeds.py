"""Random streams per (task, sample): one derived seed for each candidate.

Engines that seed each request (vLLM, OpenAI-compatible servers) give sample j of the task at
position i the seed ``sample_seed(seed, i, j)``. The seeds come from a hash, so no two
(task, sample) pairs share a stream: ``seed + j`` children of neighbouring tasks would overlap.
"""

from __future__ import annotations

import hashlib

MAX_SEED = 2**31 - 1


def sample_seed(seed: int, task_index: int, sample_index: int) -> int:
    """A seed in [0, 2**31 - 1) for sample ``sample_index`` of task ``task_index``."""
    key = f"{seed}:{task_index}:{sample_index}".encode()
    return int.from_bytes(hashlib.blake2b(key, digest_size=8).digest(), "big") % MAX_SEED
