# cython: language_level=3
# distutils: extra_compile_args = -ffp-contract=off
"""Monte Carlo estimates of pi in plain Python loops, compiled as-is by Cython.

The module is written in Cython's pure-Python mode: uncompiled, ``cython`` is a
no-op shim and the loop runs as ordinary Python; compiled (the cython mode bit),
the declared locals become C integers and doubles and the loop runs as C.
Every 64-bit operation is masked so that Python's unbounded ints wrap exactly
like C's unsigned long long, and the hit test is done in integers, so both
builds return identical results. ``-ffp-contract=off`` keeps the compiler from
fusing ``1.0 + u * u`` into one FMA, which would round differently from Python.
"""

import cython

MASK64 = cython.declare(cython.ulonglong, 0xFFFFFFFFFFFFFFFF)
# xorshift64* output multiplier (Vigna, "An experimental exploration of
# Marsaglia's xorshift generators", 2016).
MULTIPLIER = cython.declare(cython.ulonglong, 0x2545F4914F6CDD1D)
GOLDEN_GAMMA = 0x9E3779B97F4A7C15
# Coordinates are 31-bit integers, so x*x + y*y < 2**63 never overflows.
COORD_SHIFT = cython.declare(cython.int, 33)
UNIT_SQUARED = cython.declare(cython.ulonglong, 1 << 62)
INV_COORD_RANGE = cython.declare(cython.double, 1.0 / (1 << 31))


def splitmix64(x):
    """One step of SplitMix64 (for seeding): a well-mixed 64-bit value from ``x``."""
    z = (x + GOLDEN_GAMMA) & 0xFFFFFFFFFFFFFFFF
    z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & 0xFFFFFFFFFFFFFFFF
    z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & 0xFFFFFFFFFFFFFFFF
    return z ^ (z >> 31)


def chunk_state(seed, task, chunk):
    """The generator state of one chunk: independent streams per (seed, task, chunk)."""
    z = splitmix64(seed & 0xFFFFFFFFFFFFFFFF)
    z = splitmix64(z ^ (task & 0xFFFFFFFFFFFFFFFF))
    z = splitmix64(z ^ (chunk & 0xFFFFFFFFFFFFFFFF))
    return z or GOLDEN_GAMMA  # xorshift must not start from 0


@cython.cfunc
@cython.inline
@cython.exceptval(check=False)
@cython.locals(x=cython.ulonglong)
def _next_state(x) -> cython.ulonglong:
    x ^= x >> 12
    x ^= (x << 25) & MASK64
    x ^= x >> 27
    return x


@cython.locals(n=cython.longlong, i=cython.longlong, x=cython.ulonglong, a=cython.ulonglong,
               b=cython.ulonglong, inside=cython.longlong, u=cython.double, total=cython.double)
def sample(n_samples, state):
    """Draw ``n_samples`` points from a xorshift64* stream starting at ``state``.

    Returns:
        ``(inside, integral_sum)``: how many points (x, y) of the unit square
        fell inside the quarter circle, and the sum of 4 / (1 + u**2) over the
        x coordinates u (its mean estimates the integral of that function over
        [0, 1], which is pi).
    """
    n = n_samples
    x = state
    inside = 0
    total = 0.0
    for i in range(n):
        x = _next_state(x)
        a = ((x * MULTIPLIER) & MASK64) >> COORD_SHIFT
        x = _next_state(x)
        b = ((x * MULTIPLIER) & MASK64) >> COORD_SHIFT
        if a * a + b * b < UNIT_SQUARED:
            inside += 1
        u = (a + 0.5) * INV_COORD_RANGE
        total += 4.0 / (1.0 + u * u)
    return inside, total


def run_chunk(item):
    """Work one item ``(task, chunk, n_samples, seed)``.

    Module-level, so a process pool can pickle it.

    Returns:
        ``(task, chunk, n_samples, inside, integral_sum)``.
    """
    task, chunk, n_samples, seed = item
    inside, total = sample(int(n_samples), chunk_state(int(seed), int(task), int(chunk)))
    return int(task), int(chunk), int(n_samples), int(inside), float(total)
