"""Read ahead: run the next reads on a background thread while the caller uses the current one.

Why a thread, not DataLoader workers: the reads are file decodes (PIL releases the GIL) or
memory-map copies, so one thread overlaps them with training without pickling batches between
processes, and the order of the reads — hence every seeded draw — stays the caller's.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from typing import TypeVar

T = TypeVar("T")


def prefetch(reads: Iterable[Callable[[], T]], depth: int = 2) -> Iterator[T]:
    """The results of `reads` in order, up to `depth` of them computed ahead on one thread."""
    calls = iter(reads)
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="ddray-prefetch") as pool:
        ahead: deque[Future[T]] = deque()
        for call in calls:
            ahead.append(pool.submit(call))
            if len(ahead) >= depth:
                break
        while ahead:
            result = ahead.popleft().result()
            nxt = next(calls, None)
            if nxt is not None:
                ahead.append(pool.submit(nxt))
            yield result
