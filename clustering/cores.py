"""Passes over every row of a large matrix, on every core.

NumPy and SciPy release the interpreter inside each large call, so a pass
split into one block of rows per core runs that much faster in threads: a
member sum or a distance per row over a million 512-d rows took 0.6 s on
one core and 0.3 s on two.
"""

import os
from concurrent.futures import ThreadPoolExecutor

# Fewer rows than this per core are not worth a thread.
MIN_ROWS = 50_000
# Bytes of rows a pass gathers or multiplies at a time: below glibc's 32 MB
# ceiling for serving an allocation from its heap, so each block reuses the
# last one's memory. Larger blocks are mapped anew each time, and fresh
# memory is slow on a machine that hands freed memory back to its host: a
# first 100k k-means fit took 0.59-0.80 s in 33.5 MB blocks, 0.33-0.42 s in 16.7.
BLOCK_BYTES = 16 << 20


def count():
    """The cores this process may run on (its CPU affinity where the system has one)."""
    if hasattr(os, "sched_getaffinity"):
        return len(os.sched_getaffinity(0))
    return os.cpu_count() or 1


def rows_per_block(width, itemsize=4):
    """Rows of ``width`` values of ``itemsize`` bytes that fill BLOCK_BYTES."""
    return max(1, BLOCK_BYTES // (width * itemsize))


def by_rows(n, work):
    """``[work(start, stop), ...]`` over contiguous blocks covering rows
    ``0..n``, one block per core, in order."""
    blocks = max(1, min(count(), n // MIN_ROWS))
    bounds = [n * i // blocks for i in range(blocks + 1)]
    if blocks == 1:
        return [work(0, n)]
    with ThreadPoolExecutor(blocks, "clusterlab-rows") as pool:
        return list(pool.map(work, bounds[:-1], bounds[1:]))
