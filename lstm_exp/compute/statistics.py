"""Repeated measurements summarized with their uncertainty, and the difference between two groups.

A metric measured once per seed is a sample of what the variant does. For a group of runs:

    summarize(values)   n, mean, sample standard deviation (ddof 1), and the 95 % Student-t interval
                        of the mean, mean ± t(0.975, n - 1) · s / √n. With n = 1 there is no interval
                        (None), not one of zero width. NaN and ±inf are left out and counted.
    welch(a, b)         mean(a) - mean(b) with its 95 % interval by Welch's t (variances not assumed
                        equal): se = √(s_a²/n_a + s_b²/n_b), df by Welch-Satterthwaite,
                        (s_a²/n_a + s_b²/n_b)² / ((s_a²/n_a)²/(n_a - 1) + (s_b²/n_b)²/(n_b - 1)).
                        No interval with fewer than two values in a group or no spread in either.

Example:
    >>> summarize([1.0, 2.0, 3.0])   # t(0.975, 2) = 4.303, s / √3 = 0.577
    Summary(n=3, mean=2.0, std=1.0, ci_low=-0.484..., ci_high=4.484..., excluded=0)

Intervals are for one comparison at a time: picking the best of several groups and comparing it with
each of the others is not corrected for (a difference barely shown among many groups deserves more
seeds).
"""

import math
from dataclasses import dataclass

LEVEL = 0.95  # every interval here is a 95 % one


@dataclass(frozen=True)
class Summary:
    """One group's values of one metric; `ci_low`/`ci_high` are None with fewer than two values."""

    n: int
    mean: float | None
    std: float | None
    ci_low: float | None
    ci_high: float | None
    excluded: int = 0  # values left out because they were NaN or infinite


@dataclass(frozen=True)
class Difference:
    """mean(a) - mean(b), its 95 % Welch interval (None when there is none) and degrees of freedom."""

    estimate: float
    ci_low: float | None
    ci_high: float | None
    df: float | None
    n_a: int
    n_b: int

    @property
    def shown(self) -> bool:
        """True when the interval leaves out zero: a difference the data show, at this level."""
        return self.ci_low is not None and (self.ci_low > 0 or self.ci_high < 0)


def t_quantile(df: float) -> float:
    """The two-sided 95 % quantile of Student's t with `df` degrees of freedom (df = 4: 2.776)."""
    from scipy.stats import t

    return float(t.ppf(0.5 + LEVEL / 2, df))


def finite(values) -> list[float]:
    """The values that are finite numbers, as floats."""
    return [float(v) for v in values if v is not None and math.isfinite(float(v))]


def summarize(values) -> Summary:
    """n, mean, standard deviation and 95 % interval of the finite `values` (see the module's text)."""
    values = list(values)
    kept = finite(values)
    n, excluded = len(kept), len(values) - len(kept)
    if n == 0:
        return Summary(0, None, None, None, None, excluded)
    mean = math.fsum(kept) / n
    if n == 1:
        return Summary(1, mean, None, None, None, excluded)
    std = math.sqrt(math.fsum((v - mean) ** 2 for v in kept) / (n - 1))
    half = t_quantile(n - 1) * std / math.sqrt(n)
    return Summary(n, mean, std, mean - half, mean + half, excluded)


def welch(a, b) -> Difference | None:
    """mean(a) - mean(b) of the finite values, with Welch's 95 % interval; None if a group is empty."""
    sa, sb = summarize(a), summarize(b)
    if not sa.n or not sb.n:
        return None
    estimate = sa.mean - sb.mean
    if sa.n < 2 or sb.n < 2:
        return Difference(estimate, None, None, None, sa.n, sb.n)
    va, vb = sa.std**2 / sa.n, sb.std**2 / sb.n  # squared standard errors of the two means
    if va + vb == 0:  # no spread at all: no interval can be drawn from these values
        return Difference(estimate, None, None, None, sa.n, sb.n)
    df = (va + vb) ** 2 / (va**2 / (sa.n - 1) + vb**2 / (sb.n - 1))
    half = t_quantile(df) * math.sqrt(va + vb)
    return Difference(estimate, estimate - half, estimate + half, df, sa.n, sb.n)
