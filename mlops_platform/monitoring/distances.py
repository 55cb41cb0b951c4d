"""The distances ``drift`` measures between a capture window and its baseline (see ``drift``'s docstring)."""

from __future__ import annotations

import numpy as np

# scipy ships no type hints (pyproject.toml lists no override for it).
from scipy import special, stats  # type: ignore[import-untyped]

from mlops_platform.monitoring.baseline import bin_indices

EPSILON = 1e-4
DECIMALS = 6


def population_stability(expected: list[float], values: np.ndarray, edges: list[float]) -> float:
    """PSI of ``values`` against the baseline's shares on the baseline's bins."""
    counts = np.bincount(bin_indices(values, edges), minlength=len(edges) + 1)
    return _stability(expected, counts / len(values))


def _stability(expected: list[float], shares: np.ndarray) -> float:
    """PSI of live ``shares`` against the baseline's, each floored at ``EPSILON``."""
    actual = np.clip(shares, EPSILON, None)
    reference = np.clip(np.asarray(expected, dtype=float), EPSILON, None)
    return _round(float(np.sum(special.rel_entr(actual, reference) + special.rel_entr(reference, actual))))


def kolmogorov_smirnov(values: np.ndarray, sketch: list[float]) -> tuple[float, float]:
    """KS statistic and p-value of ``values`` against the baseline CDF of the sketch, ties on either side counted."""
    distinct, counts = np.unique(values, return_counts=True)
    at = np.cumsum(counts) / len(values)  # the live share <= each distinct value
    below = at - counts / len(values)  # the live share < it
    cdf_below, cdf_at = sketch_cdf(sketch, distinct)
    # Between two live values the empirical CDF is flat, so the largest distance is at one of their two sides.
    statistic = float(max(np.max(np.abs(at - cdf_at)), np.max(np.abs(below - cdf_below))))
    return _round(statistic), _round(float(stats.kstwo.sf(statistic, len(values))))


def sketch_cdf(sketch: list[float], x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``F(x-)`` and ``F(x)`` of the distribution whose quantiles at evenly spaced levels are ``sketch``.

    Level ``i / (len - 1)`` has quantile ``sketch[i]``. A value the sketch holds from index ``i`` to ``j``
    is a jump from level ``i`` to level ``j``; strictly between two distinct values the CDF is linear.
    """
    points = np.asarray(sketch, dtype=float)
    last = len(points) - 1
    if last < 1:
        raise ValueError(f"a sketch needs at least two quantiles, not {len(points)}")
    through = np.searchsorted(points, x, side="right")  # how many quantiles are <= x
    before = np.searchsorted(points, x, side="left")  # how many are < x

    def linear(index: np.ndarray) -> np.ndarray:
        """The CDF at x, strictly between ``points[index]`` and ``points[index + 1]``."""
        i = np.clip(index, 0, last - 1)
        low, high = points[i], points[i + 1]
        return (i + (x - low) / np.where(high > low, high - low, 1.0)) / last

    held = np.isin(x, points)
    cdf_at = np.where(
        through == 0, 0.0, np.where(through > last, 1.0, np.where(held, (through - 1) / last, linear(through - 1)))
    )
    cdf_below = np.where(
        before == 0, 0.0, np.where(before > last, 1.0, np.where(held, before / last, linear(before - 1)))
    )
    return cdf_below, cdf_at


def category_distances(expected: list[float], counts: np.ndarray) -> tuple[float, float, float]:
    """PSI, the largest difference of shares (L-infinity) and the chi-square test's p-value of live category
    ``counts`` against the baseline's shares (both with a last entry for categories training never held).

    The baseline's unseen share is 0: floored at ``EPSILON`` (and renormalized) so an unseen category makes
    the test reject instead of dividing by zero.
    """
    shares = counts / counts.sum()
    reference = np.asarray(expected, dtype=float)
    floored = np.clip(reference, EPSILON, None)
    p_value = float(stats.chisquare(counts, floored / floored.sum() * counts.sum()).pvalue)
    linf = float(np.max(np.abs(shares - reference)))
    return _stability(expected, shares), _round(linf), _round(p_value)


def _round(value: float) -> float:
    return round(value, DECIMALS)
