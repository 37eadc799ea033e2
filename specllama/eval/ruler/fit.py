"""Finding the haystack size that fills a requested length in target tokens.

RULER grows the haystack in fixed increments (500 essay words, 25 sentences...) and keeps the last
size that fits, which can land 10% short at 4K. Here the size is searched exactly: the largest
size whose measured length (prompt tokens with the chat template, plus the tokens to generate) is
at most the request. Lengths grow with the size (the same seed draws the same needles, keys and
positions for every size), up to tokenization noise at the cut, which the final scan absorbs.
"""

from __future__ import annotations

from collections.abc import Callable

from ..data import DataError

TOLERANCE = 0.02  # a generated sample is within 2% below the requested length


def fit_size(measure: Callable[[int], int], target: int, lo: int, hi: int, what: str) -> tuple[int, int]:
    """The largest ``size`` in ``[lo, hi]`` with ``measure(size) <= target``, and its length.

    ``measure`` must be (nearly) non-decreasing. Raises :class:`DataError` when even ``lo`` does
    not fit. About ``log2(hi - lo)`` measurements, fewer with a good linear first guess.
    """
    m_lo = measure(lo)
    if m_lo > target:
        raise DataError(f"--length {target} is too short for {what}: its smallest instance needs "
                        f"{m_lo} tokens (prompt + answer)")
    best, best_m = lo, m_lo
    if hi <= lo:
        return best, best_m
    # A linear guess from two points, a gallop to bracket it, then bisection.
    probe = min(hi, max(lo + 1, 2 * lo, 8))
    m_probe = measure(probe)
    if m_probe > target:
        lo_b, hi_b = lo, probe
    else:
        best, best_m = probe, m_probe
        rate = (m_probe - m_lo) / max(1, probe - lo)
        guess = hi if rate <= 0 else int(probe + (target - m_probe) / rate)
        guess = min(hi, max(probe, guess))
        step = max(1, guess // 128)
        m = measure(guess) if guess != probe else m_probe
        if m <= target:  # gallop up
            lo_b, best, best_m, hi_b = guess, guess, m, None
            while hi_b is None:
                if lo_b >= hi:
                    return best, best_m
                cand = min(hi, lo_b + step)
                step *= 2
                m = measure(cand)
                if m <= target:
                    lo_b, best, best_m = cand, cand, m
                else:
                    hi_b = cand
        else:  # gallop down
            hi_b, lo_b = guess, None
            while lo_b is None:
                cand = max(probe, hi_b - step)
                step *= 2
                m = measure(cand) if cand != probe else m_probe
                if m <= target:
                    lo_b, best, best_m = cand, cand, m
                else:
                    hi_b = cand
    # invariant: lo_b fits, hi_b does not
    while hi_b - lo_b > 1:
        mid = (lo_b + hi_b) // 2
        m = measure(mid)
        if m <= target:
            lo_b, best, best_m = mid, mid, m
        else:
            hi_b = mid
    return best, best_m
