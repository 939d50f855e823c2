"""Order-preserving parallel map over a stream, with bounded memory.

``multiprocessing.Pool.imap`` reads its whole input ahead of the workers, so memory grows with
the input; here at most ``window`` chunks are in flight and results come back in input order.
"""

from __future__ import annotations

import multiprocessing
from collections import deque
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from itertools import islice
from typing import Callable, Iterable, Iterator, TypeVar

from .errors import RFError

T = TypeVar("T")
R = TypeVar("R")


def _chunks(items: Iterable[T], size: int) -> Iterator[list[T]]:
    it = iter(items)
    while chunk := list(islice(it, size)):
        yield chunk


def ordered_map(fn: Callable[[list[T]], list[R]], items: Iterable[T], *, jobs: int,
                chunk_size: int = 8, initializer=None, initargs=()) -> Iterator[R]:
    """Yield ``fn`` applied chunk-wise to ``items``, in input order.

    ``fn`` takes a list of items and returns a list of results of equal length; it and
    ``initializer`` must be picklable (module-level functions).
    """
    if jobs <= 1:
        if initializer is not None:
            initializer(*initargs)
        for chunk in _chunks(items, chunk_size):
            yield from fn(chunk)
        return
    methods = multiprocessing.get_all_start_methods()
    ctx = multiprocessing.get_context("fork" if "fork" in methods else "spawn")
    window = jobs * 4
    with ProcessPoolExecutor(jobs, mp_context=ctx, initializer=initializer,
                             initargs=initargs) as pool:
        pending: deque = deque()
        try:
            for chunk in _chunks(items, chunk_size):
                pending.append(pool.submit(fn, chunk))
                if len(pending) >= window:
                    yield from pending.popleft().result()
            while pending:
                yield from pending.popleft().result()
        except BrokenProcessPool as exc:
            raise RFError(f"a worker process died: {exc}") from None
        finally:
            for fut in pending:
                fut.cancel()
