"""Public-health indicator statistics, computed the way OHID/PHE compute them.

Every function here is pure (no I/O), vectorised over numpy arrays / pandas
Series, and accepts scalars.  The methods follow the R package
PHEindicatormethods (OHID/UKHSA) and the Fingertips public health technical
guidance, so that figures agree with theirs to rounding error.

Result conventions
------------------
* Point estimates with confidence limits are returned as :class:`CIResult`, a
  ``NamedTuple`` of ``value``, ``lower``, ``upper``.  Each field is a numpy
  array with the broadcast shape of the inputs, or a Python ``float`` when every
  input was a scalar.  ``pd.DataFrame(result._asdict())`` gives a table.
* Confidence levels are fractions in (0, 1): 0.95, 0.998, ...
* Grouped helpers (:func:`dsr_by_group`, :func:`funnel_limits`) return
  ``pandas.DataFrame`` objects.

Sections: crude rates and proportions; directly standardised rates; funnel
plots; benchmark comparison; Fingertips recent trends; evidence of benefit
(interrupted time series, before/after, difference in differences, detectable
effect).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Iterable, Literal, NamedTuple, Sequence

import numpy as np
import pandas as pd
from scipy import optimize, special, stats

__all__ = [
    "CIResult",
    "DSRResult",
    "RateRatioResult",
    "TrendResult",
    "Effect",
    "ITSResult",
    "DetectableEffect",
    "ESP2013",
    "ESP2013_AGEBANDS",
    "FUNNEL_LABELS",
    "byars_lower",
    "byars_upper",
    "exact_poisson_lower",
    "exact_poisson_upper",
    "count_ci",
    "rate_ci",
    "wilson_lower",
    "wilson_upper",
    "proportion_ci",
    "dsr",
    "dsr_by_group",
    "funnel_limits",
    "funnel_significance",
    "compare_to_benchmark",
    "trend_test",
    "interrupted_time_series",
    "before_after",
    "difference_in_differences",
    "detectable_effect",
]

ArrayLike = Any  # numpy array, pandas Series, list or scalar

# ---------------------------------------------------------------------------
# Constants
# ---------------------------------------------------------------------------

#: European Standard Population 2013 weights for the 19 five-year age bands
#: 0-4, 5-9, ..., 85-89, 90+ (Eurostat 2013; as ``esp2013`` in PHEindicatormethods).
ESP2013: np.ndarray = np.array(
    [5000, 5500, 5500, 5500, 6000, 6000, 6500, 7000, 7000, 7000,
     7000, 6500, 6000, 5500, 5000, 4000, 2500, 1500, 1000],
    dtype=float,
)
ESP2013.setflags(write=False)

#: Age-band labels matching :data:`ESP2013`.
ESP2013_AGEBANDS: tuple[str, ...] = tuple(
    [f"{a}-{a + 4}" for a in range(0, 90, 5)] + ["90+"]
)

#: Funnel-plot significance labels (as PHEindicatormethods ``assign_funnel_significance``).
#: "High (0.001)"/"Low (0.001)": outside the 99.8% limits; "High (0.025)"/"Low (0.025)":
#: outside the 95% but within the 99.8% limits; "Not significant": within the 95% limits.
FUNNEL_LABELS: tuple[str, ...] = (
    "High (0.001)", "High (0.025)", "Not significant", "Low (0.025)", "Low (0.001)",
)

# Fingertips recent-trend constant: 95% CI width in standard errors (2 x 1.96),
# as hard-coded in Fingertips' TrendMarkerCalculator.
_FINGERTIPS_CI_WIDTH_SE = 3.92


# ---------------------------------------------------------------------------
# Result types
# ---------------------------------------------------------------------------

class CIResult(NamedTuple):
    """Point estimate with lower and upper confidence limits."""

    value: Any
    lower: Any
    upper: Any


class DSRResult(NamedTuple):
    """Directly standardised rate (see :func:`dsr`)."""

    value: Any
    lower: Any
    upper: Any
    total_count: Any
    total_population: Any
    reason: Any  # "" when calculated, else why not (e.g. "total count under 10")


class RateRatioResult(NamedTuple):
    """A rate ratio with confidence limits and a two-sided p-value."""

    ratio: Any
    lower: Any
    upper: Any
    p_value: Any


class TrendResult(NamedTuple):
    """Fingertips recent-trend marker (see :func:`trend_test`)."""

    direction: str  # Increasing / Decreasing / No significant change / Cannot be calculated
    statistic: float  # chi-square statistic on 1 df (NaN when not calculated)
    p_value: float
    slope: float
    n_points: int
    reason: str
    method: str


class DetectableEffect(NamedTuple):
    """Minimum detectable effect (see :func:`detectable_effect`)."""

    reduction_pct: float  # smallest detectable % reduction (rate ratio 1 - pct/100)
    increase_pct: float  # smallest detectable % increase
    ratio_low: float
    ratio_high: float
    baseline_mean: float
    dispersion: float
    design: str


@dataclass(frozen=True)
class Effect:
    """A multiplicative effect (rate ratio) with confidence limits."""

    ratio: float
    lower: float
    upper: float
    confidence: float = 0.95

    @property
    def percent_change(self) -> CIResult:
        """(ratio - 1) x 100 with limits: negative means a reduction."""
        return CIResult((self.ratio - 1) * 100, (self.lower - 1) * 100, (self.upper - 1) * 100)

    @property
    def significant(self) -> bool:
        """True when the confidence interval excludes 1."""
        return bool(self.lower > 1 or self.upper < 1)


@dataclass(frozen=True)
class ITSResult:
    """Result of :func:`interrupted_time_series`.

    ``level_change``: rate ratio in the first month from ``start`` versus the
    counterfactual (the step); ``slope_change``: multiplicative change per month
    in the trend after ``start`` (None when not modelled); ``overall``: ratio of
    the model-fitted to the counterfactual total over the first
    ``follow_up_months`` months from ``start``.  Series are indexed by month.
    """

    level_change: Effect
    slope_change: Effect | None
    overall: Effect
    follow_up_months: int
    observed_total: float
    expected_total: float  # counterfactual total over the follow-up window
    fitted: pd.Series
    counterfactual: pd.Series
    counterfactual_lower: pd.Series
    counterfactual_upper: pd.Series
    dispersion: float  # Pearson chi-square / residual df
    scale: float  # dispersion used for the standard errors (1 if overdispersion=False)
    n_pre: int
    n_post: int
    params: pd.Series
    cov: pd.DataFrame
    method: str
    model: Any = field(repr=False, compare=False, default=None)

    def sentence(
        self,
        outcome: str = "Counts",
        intervention: str = "the intervention",
        digits: int = 0,
    ) -> str:
        """Plain-English summary of :attr:`overall`.

        e.g. "Admissions were 14% lower than expected in the 12 months after the
        scheme started (95% CI 6% to 21%)."
        """
        return _effect_sentence(
            self.overall, outcome,
            f"in the {self.follow_up_months} months after {intervention}", digits,
        )


def _effect_sentence(eff: Effect, outcome: str, when: str, digits: int) -> str:
    conf = f"{eff.confidence * 100:g}% CI"

    def fmt(x: float) -> str:
        return f"{abs(x):.{digits}f}%"

    pct = (eff.ratio - 1) * 100
    lo, hi = (eff.lower - 1) * 100, (eff.upper - 1) * 100
    if eff.upper < 1:  # significantly lower
        return (f"{outcome} were {fmt(pct)} lower than expected {when} "
                f"({conf} {fmt(hi)} to {fmt(lo)}).")
    if eff.lower > 1:
        return (f"{outcome} were {fmt(pct)} higher than expected {when} "
                f"({conf} {fmt(lo)} to {fmt(hi)}).")
    word = "lower" if pct < 0 else "higher"
    return (f"{outcome} were {fmt(pct)} {word} than expected {when}, which is not "
            f"statistically significant ({conf} {fmt(lo)} lower to {fmt(hi)} higher).")


# ---------------------------------------------------------------------------
# Helpers
# ---------------------------------------------------------------------------

def _check_confidence(confidence: float) -> float:
    c = float(confidence)
    if not (0.0 < c < 1.0):
        raise ValueError(f"confidence must be a fraction in (0, 1), got {confidence!r}")
    return c


def _z(confidence: float) -> float:
    """Two-sided normal quantile: z such that P(|Z| < z) = confidence."""
    return float(stats.norm.ppf(0.5 + _check_confidence(confidence) / 2.0))


def _arr(x: ArrayLike) -> np.ndarray:
    return np.asarray(x, dtype=float)


def _is_scalar(*xs: ArrayLike) -> bool:
    return all(np.ndim(x) == 0 for x in xs)


def _out(x: np.ndarray, scalar: bool) -> Any:
    if scalar:
        return float(np.asarray(x).reshape(()))
    return x


# ---------------------------------------------------------------------------
# Confidence limits for counts: Byar's and exact Poisson
# ---------------------------------------------------------------------------

def byars_lower(count: ArrayLike, confidence: float = 0.95) -> Any:
    """Byar's approximation to the lower Poisson confidence limit of a count.

    Method: O * (1 - 1/(9O) - z/(3 sqrt(O)))^3 (Breslow & Day 1987, vol. II),
    as ``byars_lower`` in PHEindicatormethods; NaN where the result would be
    negative (very small counts / high confidence), and 0 for a count of 0.
    """
    scalar = _is_scalar(count)
    o = _arr(count)
    z = _z(confidence)
    with np.errstate(divide="ignore", invalid="ignore"):
        res = o * (1 - 1 / (9 * o) - z / (3 * np.sqrt(o))) ** 3
    res = np.where(o == 0, 0.0, res)
    res = np.where(res < 0, np.nan, res)
    return _out(res, scalar)


def byars_upper(count: ArrayLike, confidence: float = 0.95) -> Any:
    """Byar's approximation to the upper Poisson confidence limit of a count.

    Method: (O+1) * (1 - 1/(9(O+1)) + z/(3 sqrt(O+1)))^3 (Breslow & Day 1987),
    as ``byars_upper`` in PHEindicatormethods.
    """
    scalar = _is_scalar(count)
    o1 = _arr(count) + 1
    z = _z(confidence)
    res = o1 * (1 - 1 / (9 * o1) + z / (3 * np.sqrt(o1))) ** 3
    return _out(res, scalar)


def exact_poisson_lower(count: ArrayLike, confidence: float = 0.95) -> Any:
    """Exact (chi-square based) lower Poisson limit: chi2_{alpha/2, 2O} / 2; 0 when O = 0.

    Source: Armitage & Berry, Statistical methods in medical research (2002);
    PHEindicatormethods ``phe_rate`` for counts under 10.  Equivalent to the
    gamma quantile ``gamma.ppf(alpha/2, O)``.
    """
    scalar = _is_scalar(count)
    o = _arr(count)
    a = 1 - _check_confidence(confidence)
    with np.errstate(invalid="ignore"):
        res = stats.chi2.ppf(a / 2, 2 * o) / 2
    res = np.where(o == 0, 0.0, res)
    return _out(res, scalar)


def exact_poisson_upper(count: ArrayLike, confidence: float = 0.95) -> Any:
    """Exact (chi-square based) upper Poisson limit: chi2_{1-alpha/2, 2O+2} / 2.

    Source: Armitage & Berry (2002); PHEindicatormethods ``phe_rate``.
    """
    scalar = _is_scalar(count)
    o = _arr(count)
    a = 1 - _check_confidence(confidence)
    res = stats.chi2.ppf(1 - a / 2, 2 * o + 2) / 2
    return _out(res, scalar)


def count_ci(count: ArrayLike, confidence: float = 0.95) -> CIResult:
    """Confidence limits for an observed count, PHE style.

    Method: exact Poisson limits (chi-square based) for counts under 10, Byar's
    method for counts of 10 or more (PHEindicatormethods ``phe_rate`` /
    ``calculate_ISRatio``; Fingertips technical guidance "Confidence intervals
    for rates").  Count 0 gives lower limit 0.
    """
    scalar = _is_scalar(count)
    o = _arr(count)
    if np.any(o < 0):
        raise ValueError("counts must be greater than or equal to zero")
    small = o < 10
    lower = np.where(small, _arr(exact_poisson_lower(o, confidence)),
                     _arr(byars_lower(o, confidence)))
    upper = np.where(small, _arr(exact_poisson_upper(o, confidence)),
                     _arr(byars_upper(o, confidence)))
    nan = np.isnan(o)
    lower = np.where(nan, np.nan, lower)
    upper = np.where(nan, np.nan, upper)
    return CIResult(_out(o, scalar), _out(lower, scalar), _out(upper, scalar))


# ---------------------------------------------------------------------------
# Crude rates and proportions
# ---------------------------------------------------------------------------

def rate_ci(
    count: ArrayLike,
    denominator: ArrayLike,
    confidence: float = 0.95,
    multiplier: float = 100_000,
) -> CIResult:
    """Crude rate per ``multiplier`` with PHE confidence limits.

    Method: value = count / denominator x multiplier.  Limits: exact Poisson
    (chi-square) limits on the count when it is under 10, Byar's method
    otherwise, divided by the denominator (PHEindicatormethods ``phe_rate``;
    Fingertips technical guidance).  Count 0 gives lower limit 0.  NaN count or
    denominator gives NaN.

    Raises ValueError for negative counts or non-positive denominators.
    """
    scalar = _is_scalar(count, denominator)
    x = _arr(count)
    n = _arr(denominator)
    if np.any(n <= 0):
        raise ValueError("denominators must be greater than zero")
    c = count_ci(x, confidence)
    with np.errstate(invalid="ignore"):
        value = x / n * multiplier
        lower = _arr(c.lower) / n * multiplier
        upper = _arr(c.upper) / n * multiplier
    return CIResult(_out(value, scalar), _out(lower, scalar), _out(upper, scalar))


def wilson_lower(numerator: ArrayLike, denominator: ArrayLike, confidence: float = 0.95) -> Any:
    """Wilson score lower limit: (2x + z^2 - z sqrt(z^2 + 4x(1 - x/n))) / (2(n + z^2)).

    Source: Wilson (1927); Newcombe & Altman in Statistics with Confidence
    (2000); PHEindicatormethods ``wilson_lower``.
    """
    scalar = _is_scalar(numerator, denominator)
    x, n = _arr(numerator), _arr(denominator)
    z = _z(confidence)
    res = (2 * x + z**2 - z * np.sqrt(z**2 + 4 * x * (1 - x / n))) / 2 / (n + z**2)
    return _out(res, scalar)


def wilson_upper(numerator: ArrayLike, denominator: ArrayLike, confidence: float = 0.95) -> Any:
    """Wilson score upper limit: (2x + z^2 + z sqrt(z^2 + 4x(1 - x/n))) / (2(n + z^2)).

    Source: Wilson (1927); PHEindicatormethods ``wilson_upper``.
    """
    scalar = _is_scalar(numerator, denominator)
    x, n = _arr(numerator), _arr(denominator)
    z = _z(confidence)
    res = (2 * x + z**2 + z * np.sqrt(z**2 + 4 * x * (1 - x / n))) / 2 / (n + z**2)
    return _out(res, scalar)


def proportion_ci(
    numerator: ArrayLike,
    denominator: ArrayLike,
    confidence: float = 0.95,
    multiplier: float = 1,
) -> CIResult:
    """Proportion x ``multiplier`` (100 for a percentage) with Wilson score limits.

    Method: Wilson score interval (Wilson 1927; Newcombe & Altman 2000), as
    PHEindicatormethods ``phe_proportion``.  NaN inputs give NaN.

    Raises ValueError for negative numerators, non-positive denominators or
    numerator > denominator.
    """
    scalar = _is_scalar(numerator, denominator)
    x, n = _arr(numerator), _arr(denominator)
    if np.any(x < 0):
        raise ValueError("numerators must be greater than or equal to zero")
    if np.any(n <= 0):
        raise ValueError("denominators must be greater than zero")
    if np.any(x > n):
        raise ValueError("numerators must be less than or equal to denominators")
    value = x / n * multiplier
    lower = _arr(wilson_lower(x, n, confidence)) * multiplier
    upper = _arr(wilson_upper(x, n, confidence)) * multiplier
    return CIResult(_out(value, scalar), _out(lower, scalar), _out(upper, scalar))


# ---------------------------------------------------------------------------
# Directly standardised rates
# ---------------------------------------------------------------------------

def dsr(
    counts: ArrayLike,
    populations: ArrayLike,
    standard: ArrayLike = ESP2013,
    confidence: float = 0.95,
    multiplier: float = 100_000,
) -> DSRResult:
    """Directly standardised rate with Dobson confidence limits.

    Method (PHEindicatormethods ``calculate_dsr``/``phe_dsr``; Fingertips
    technical guidance "Directly standardised rates"):

    * DSR = sum_i(w_i x_i / n_i) / sum_i(w_i) x multiplier;
    * var(DSR) = sum_i(x_i w_i^2 / n_i^2) / (sum_i w_i)^2;
    * Dobson et al. (1991) limits: DSR + sqrt(var / O) x (O_L - O) x multiplier
      (and likewise with O_U), where O = sum(x) and O_L, O_U are the confidence
      limits of O (exact Poisson under 10, Byar's otherwise: :func:`count_ci`);
    * not calculated (NaN, reason "total count under 10") when O < 10.

    ``counts`` and ``populations`` have age bands on the last axis (shape
    ``(..., k)``), so a 2-D array computes one DSR per row.  Missing (NaN)
    counts are treated as zero, as in PHEindicatormethods.  ``standard`` has
    length k (default :data:`ESP2013`, 19 bands).
    """
    x = _arr(counts)
    n = _arr(populations)
    w = _arr(standard)
    x, n = np.broadcast_arrays(x, n)
    if x.ndim == 0 or x.shape[-1] != w.shape[-1]:
        raise ValueError("counts/populations must have one column per standard-population band")
    if np.any(np.isnan(n)):
        raise ValueError("populations cannot be missing")
    if np.any(x < 0):
        raise ValueError("counts must be greater than or equal to zero")
    if np.any(n <= 0):
        raise ValueError("populations must be greater than zero")
    if np.any(w < 0):
        raise ValueError("standard population weights must be >= 0")
    x = np.where(np.isnan(x), 0.0, x)
    scalar = x.ndim == 1
    total = x.sum(axis=-1)
    total_pop = n.sum(axis=-1)
    sw = w.sum()
    value = (x * w / n).sum(axis=-1) / sw * multiplier
    var = (x * (w / n) ** 2).sum(axis=-1) / sw**2
    c = count_ci(total, confidence)
    with np.errstate(invalid="ignore", divide="ignore"):
        k = np.sqrt(var / total) * multiplier
        lower = value + k * (_arr(c.lower) - total)
        upper = value + k * (_arr(c.upper) - total)
    small = total < 10
    value = np.where(small, np.nan, value)
    lower = np.where(small, np.nan, lower)
    upper = np.where(small, np.nan, upper)
    reason = np.where(small, "total count under 10", "")
    if scalar:
        return DSRResult(float(value), float(lower), float(upper), float(total),
                         float(total_pop), str(reason))
    return DSRResult(value, lower, upper, total, total_pop, reason)


def dsr_by_group(
    df: pd.DataFrame,
    group_cols: str | Sequence[str],
    count_col: str,
    pop_col: str,
    standard: str | ArrayLike = ESP2013,
    confidence: float = 0.95,
    multiplier: float = 100_000,
) -> pd.DataFrame:
    """Directly standardised rates for each group of a long (one row per age band) table.

    Same method as :func:`dsr`.  ``standard`` is either the name of a column of
    ``df`` holding each row's standard-population weight, or an array of
    weights applied to each group's rows in order (default :data:`ESP2013`: each
    group must then have 19 rows ordered 0-4 ... 90+).

    Returns one row per group: the group columns, ``total_count``,
    ``total_population``, ``value``, ``lower``, ``upper``, ``confidence``,
    ``method`` ("Dobson") and ``reason`` ("" or "total count under 10").
    """
    cols = [group_cols] if isinstance(group_cols, str) else list(group_cols)
    rows = []
    for key, g in df.groupby(cols, sort=True, dropna=False):
        if isinstance(standard, str):
            w = g[standard].to_numpy(float)
        else:
            w = _arr(standard)
            if len(w) != len(g):
                raise ValueError(
                    f"group {key!r} has {len(g)} rows but the standard has {len(w)} weights")
        r = dsr(g[count_col].to_numpy(float), g[pop_col].to_numpy(float), w,
                confidence=confidence, multiplier=multiplier)
        key = key if isinstance(key, tuple) else (key,)
        rows.append({**dict(zip(cols, key)),
                     "total_count": r.total_count, "total_population": r.total_population,
                     "value": r.value, "lower": r.lower, "upper": r.upper,
                     "confidence": confidence, "method": "Dobson", "reason": r.reason})
    return pd.DataFrame(rows)


# ---------------------------------------------------------------------------
# Funnel plots
# ---------------------------------------------------------------------------

def _conf_label(c: float) -> str:
    return f"{c * 100:g}".replace(".", "_")


def funnel_limits(
    denominator: ArrayLike,
    benchmark: float,
    statistic: Literal["rate", "proportion"] = "rate",
    multiplier: float | None = None,
    confidence: Sequence[float] = (0.95, 0.998),
) -> pd.DataFrame:
    """Funnel-plot control limits around ``benchmark`` as a function of the denominator.

    Method (PHE funnel plot methodology, as PHEindicatormethods
    ``calculate_funnel_limits``):

    * ``"rate"`` (``benchmark`` per ``multiplier``, default 100,000): exact
      Poisson limits.  At denominator n the expected count is
      mu = benchmark / multiplier x n.  The lower limit is the rate x/n for the
      count x whose exact upper confidence limit equals mu
      (chi2.cdf(2 mu; 2x + 2) = 1 - alpha/2), the upper limit the rate whose
      exact lower limit equals mu (chi2.cdf(2 mu; 2x) = alpha/2); x is
      continuous (solved with ``scipy.special.chdtriv``) and the lower limit is
      floored at 0.  PHEindicatormethods evaluates the same curve at integer
      event counts by bisection.
    * ``"proportion"`` (``benchmark`` as a proportion x ``multiplier``, default 1):
      the observed proportion whose Wilson score interval just touches the
      benchmark p0, which is p0 +/- z sqrt(p0 (1 - p0) / n) (PHEindicatormethods
      ``sigma_adjustment``), clipped to [0, multiplier].

    Returns a DataFrame with columns ``denominator``, ``benchmark`` and
    ``lower_<c>``/``upper_<c>`` for each confidence level (``lower_95``,
    ``upper_95``, ``lower_99_8``, ``upper_99_8`` by default).
    """
    if statistic not in ("rate", "proportion"):
        raise ValueError("statistic must be 'rate' or 'proportion'")
    if multiplier is None:
        multiplier = 100_000 if statistic == "rate" else 1
    n = np.atleast_1d(_arr(denominator))
    if np.any(n <= 0):
        raise ValueError("denominators must be greater than zero")
    b = float(benchmark) / multiplier
    out = {"denominator": n, "benchmark": np.full(n.shape, float(benchmark))}
    for c in confidence:
        a = 1 - _check_confidence(c)
        lab = _conf_label(c)
        if statistic == "rate":
            mu = b * n
            x_lo = special.chdtriv(1 - a / 2, 2 * mu) / 2 - 1
            x_hi = special.chdtriv(a / 2, 2 * mu) / 2
            out[f"lower_{lab}"] = np.maximum(x_lo, 0.0) / n * multiplier
            out[f"upper_{lab}"] = x_hi / n * multiplier
        else:
            if not 0 <= b <= 1:
                raise ValueError("a proportion benchmark must lie in [0, multiplier]")
            h = _z(c) * np.sqrt(b * (1 - b) / n)
            out[f"lower_{lab}"] = np.clip(b - h, 0, 1) * multiplier
            out[f"upper_{lab}"] = np.clip(b + h, 0, 1) * multiplier
    return pd.DataFrame(out)


def funnel_significance(
    numerator: ArrayLike,
    denominator: ArrayLike,
    benchmark: float | None = None,
    statistic: Literal["rate", "proportion"] = "rate",
    multiplier: float | None = None,
) -> Any:
    """Classify points against the 95% and 99.8% funnel limits.

    Labels (:data:`FUNNEL_LABELS`, as PHEindicatormethods
    ``assign_funnel_significance``): "High (0.001)" / "Low (0.001)" outside the
    99.8% limits; "High (0.025)" / "Low (0.025)" outside the 95% but within the
    99.8% limits; "Not significant" within the 95% limits.

    ``benchmark`` (per ``multiplier``) defaults to the pooled average
    sum(numerator) / sum(denominator), as PHE does.

    Method: for ``"rate"`` a point is high when the lower confidence limit of
    its count (exact under 10, Byar's otherwise: :func:`count_ci`) divided by
    its denominator exceeds the benchmark, low when the upper limit is below
    it.  For ``"proportion"`` the observed proportion is compared with the
    limits of :func:`funnel_limits` (strict inequalities, as PHE).

    For directly standardised rates pass PHE's derived denominator
    ``count / dsr x multiplier``; PHE reports points with fewer than 10 events
    as not applicable for DSRs.
    """
    if statistic not in ("rate", "proportion"):
        raise ValueError("statistic must be 'rate' or 'proportion'")
    if multiplier is None:
        multiplier = 100_000 if statistic == "rate" else 1
    scalar = _is_scalar(numerator, denominator)
    x = np.atleast_1d(_arr(numerator))
    n = np.atleast_1d(_arr(denominator))
    x, n = np.broadcast_arrays(x, n)
    if np.any(x < 0):
        raise ValueError("numerators must be greater than or equal to zero")
    if np.any(n <= 0):
        raise ValueError("denominators must be greater than zero")
    if benchmark is None:
        b = np.nansum(x) / np.nansum(n)
    else:
        b = float(benchmark) / multiplier
    res = np.full(x.shape, "Not significant", dtype=object)
    if statistic == "rate":
        for conf, tag in ((0.95, "0.025"), (0.998, "0.001")):
            c = count_ci(x, conf)
            with np.errstate(invalid="ignore"):
                res = np.where(_arr(c.lower) / n > b, f"High ({tag})", res)
                res = np.where(_arr(c.upper) / n < b, f"Low ({tag})", res)
    else:
        if np.any(x > n):
            raise ValueError("numerators must be less than or equal to denominators")
        p = x / n
        for conf, tag in ((0.95, "0.025"), (0.998, "0.001")):
            h = _z(conf) * np.sqrt(b * (1 - b) / n)
            res = np.where(p > b + h, f"High ({tag})", res)
            res = np.where(p < b - h, f"Low ({tag})", res)
    res = np.where(np.isnan(x) | np.isnan(n), None, res)
    return res[0] if scalar else res


# ---------------------------------------------------------------------------
# Benchmark comparison
# ---------------------------------------------------------------------------

_POLARITIES = ("lower_is_better", "higher_is_better", "none")


def compare_to_benchmark(
    lower: ArrayLike,
    upper: ArrayLike,
    benchmark: ArrayLike,
    polarity: Literal["lower_is_better", "higher_is_better", "none"] = "none",
) -> Any:
    """Fingertips-style comparison of a confidence interval with a benchmark.

    Method (Fingertips technical guidance, "Comparing with a benchmark"): the
    value is significantly higher when its lower confidence limit is above the
    benchmark, significantly lower when its upper limit is below it, otherwise
    similar (an interval touching the benchmark counts as similar).  With
    ``polarity="lower_is_better"`` lower is "Better" and higher "Worse";
    ``"higher_is_better"`` the reverse; ``"none"`` returns "Higher" / "Similar" /
    "Lower".  "Not compared" where a limit or the benchmark is NaN.

    Use with a :class:`CIResult` ``r`` as ``compare_to_benchmark(r.lower, r.upper, b)``.
    """
    if polarity not in _POLARITIES:
        raise ValueError(f"polarity must be one of {_POLARITIES}")
    scalar = _is_scalar(lower, upper, benchmark)
    lo, hi, b = np.broadcast_arrays(np.atleast_1d(_arr(lower)), np.atleast_1d(_arr(upper)),
                                    np.atleast_1d(_arr(benchmark)))
    higher, lower_, similar = {
        "lower_is_better": ("Worse", "Better", "Similar"),
        "higher_is_better": ("Better", "Worse", "Similar"),
        "none": ("Higher", "Lower", "Similar"),
    }[polarity]
    res = np.full(lo.shape, similar, dtype=object)
    res = np.where(lo > b, higher, res)
    res = np.where(hi < b, lower_, res)
    res = np.where(np.isnan(lo) | np.isnan(hi) | np.isnan(b), "Not compared", res)
    return res[0] if scalar else res


# ---------------------------------------------------------------------------
# Fingertips recent trends
# ---------------------------------------------------------------------------

def _ols_slope(t: np.ndarray, y: np.ndarray) -> float:
    k = len(t)
    return float((k * np.sum(t * y) - np.sum(t) * np.sum(y)) / (k * np.sum(t**2) - np.sum(t) ** 2))


def _wls(t: np.ndarray, v: np.ndarray, w: np.ndarray) -> tuple[float, float]:
    s1, s2, s3, s4, s5 = w.sum(), (w * v * t).sum(), (w * t).sum(), (w * v).sum(), (w * t**2).sum()
    det = s1 * s5 - s3**2
    slope = (s1 * s2 - s3 * s4) / det
    se = np.sqrt(s1 / det)
    return float(slope), float(se)


def trend_test(
    counts: ArrayLike,
    denominators: ArrayLike,
    *,
    statistic: Literal["proportion", "rate"] = "proportion",
    n_points: int = 5,
    confidence: float = 0.998,
    multiplier: float = 100_000,
    values: ArrayLike | None = None,
    lower: ArrayLike | None = None,
    upper: ArrayLike | None = None,
) -> TrendResult:
    """Fingertips recent-trend marker over the most recent ``n_points`` (default 5) points.

    Input is one series in time order (oldest first), one value per period
    (Fingertips only tests annual, non-overlapping periods).

    Rule implemented (Fingertips technical guidance "Recent trends" and its
    production code, ``TrendMarkerCalculator`` in PHE's fingertips-open):

    1. Use the most recent unbroken run of valid points (count and denominator
       present; for ``"rate"`` also value and limits).  Fewer than ``n_points``
       -> "Cannot be calculated".  For proportions a count of 0 or equal to the
       denominator also -> "Cannot be calculated" (the logit is undefined).
    2. Take the last ``n_points`` with times t = 1..k.
    3. ``"proportion"``: chi-square test for linear trend in proportions
       (Cochran-Armitage / Armitage 1955, no continuity correction):
       X^2 = N (N sum r_i t_i - R sum n_i t_i)^2 /
       (R (N - R) (N sum n_i t_i^2 - (sum n_i t_i)^2)), with r_i counts, n_i
       denominators, R = sum r_i, N = sum n_i.  The slope is the least-squares
       slope of logit(r_i / n_i) on t.
       ``"rate"`` (or any value with 95% limits supplied via ``values``,
       ``lower``, ``upper``): weighted least-squares regression of the value on
       t with weights 1/se^2, se = (upper - lower) / 3.92; X^2 = (slope/se)^2.
       By default values and 95% limits come from :func:`rate_ci`.
    4. Significant when X^2 exceeds the chi-square(1 df) quantile at
       ``confidence`` (default 99.8%: 9.5495, as Fingertips) AND the slope has
       the same sign when each point in turn is left out (Fingertips' outlier
       check); then "Increasing"/"Decreasing" by the sign of the slope, else
       "No significant change".

    Returns a :class:`TrendResult` (direction, chi-square statistic, p-value on
    1 df, slope, number of points used, reason, method).
    """
    x = np.atleast_1d(_arr(counts))
    n = np.atleast_1d(_arr(denominators))
    x, n = np.broadcast_arrays(x, n)
    crit = stats.chi2.ppf(_check_confidence(confidence), 1)
    if statistic not in ("proportion", "rate"):
        raise ValueError("statistic must be 'proportion' or 'rate'")
    if statistic == "rate" or values is not None:
        if values is None:
            r = rate_ci(np.where(np.isnan(x), 0, x), np.where(np.isnan(n) | (n <= 0), 1, n),
                        0.95, multiplier)
            v = np.where(np.isnan(x) | np.isnan(n) | (n <= 0), np.nan, _arr(r.value))
            lo = np.where(np.isnan(v), np.nan, _arr(r.lower))
            hi = np.where(np.isnan(v), np.nan, _arr(r.upper))
        else:
            v, lo, hi = (np.atleast_1d(_arr(a)) for a in (values, lower, upper))
        valid = ~(np.isnan(v) | np.isnan(lo) | np.isnan(hi)) & (hi > lo)
        method = "Weighted least squares trend on values with 95% CIs (Fingertips)"
    else:
        valid = ~(np.isnan(x) | np.isnan(n)) & (n > 0)
        method = "Chi-square test for linear trend in proportions (Fingertips)"
    # most recent unbroken run of valid points
    run = 0
    for ok in valid[::-1]:
        if not ok:
            break
        run += 1

    def cannot(reason: str) -> TrendResult:
        return TrendResult("Cannot be calculated", float("nan"), float("nan"), float("nan"),
                           0, reason, method)

    if run < n_points:
        return cannot(f"fewer than {n_points} consecutive valid points")
    sl = slice(len(x) - n_points, len(x))
    t = np.arange(1, n_points + 1, dtype=float)
    if method.startswith("Chi-square"):
        r, d = x[sl], n[sl]
        if np.any(r <= 0) or np.any(r >= d):
            return cannot("count of zero or equal to the denominator")
        R, N = r.sum(), d.sum()
        chi2 = (N * (N * np.sum(r * t) - R * np.sum(d * t)) ** 2
                / (R * (N - R) * (N * np.sum(d * t**2) - np.sum(d * t) ** 2)))
        y = np.log(r / (d - r))

        def slope_of(idx: np.ndarray) -> float:
            return _ols_slope(t[idx], y[idx])
    else:
        vv = v[sl]
        se = (hi[sl] - lo[sl]) / _FINGERTIPS_CI_WIDTH_SE
        w = 1 / se**2
        s, s_se = _wls(t, vv, w)
        chi2 = (s / s_se) ** 2

        def slope_of(idx: np.ndarray) -> float:
            return _wls(t[idx], vv[idx], w[idx])[0]

    allidx = np.arange(n_points)
    slope = slope_of(allidx)
    p = float(stats.chi2.sf(chi2, 1))
    if not chi2 > crit:
        return TrendResult("No significant change", float(chi2), p, slope, n_points,
                           "no significant trend", method)
    signs = {np.sign(slope) >= 0}
    for j in range(n_points):
        signs.add(np.sign(slope_of(np.delete(allidx, j))) >= 0)
    if len(signs) > 1:
        return TrendResult("No significant change", float(chi2), p, slope, n_points,
                           "outlier found", method)
    return TrendResult("Increasing" if slope > 0 else "Decreasing", float(chi2), p, slope,
                       n_points, "significant trend, no outliers", method)


# ---------------------------------------------------------------------------
# Evidence of benefit
# ---------------------------------------------------------------------------

def _month_index(dates: ArrayLike) -> tuple[np.ndarray, np.ndarray, pd.DatetimeIndex]:
    """Absolute month number (year*12 + month - 1), calendar month and dates."""
    if isinstance(getattr(dates, "dtype", None), pd.PeriodDtype):
        di = pd.PeriodIndex(dates).to_timestamp()
    else:
        di = pd.DatetimeIndex(pd.to_datetime(np.asarray(dates)))
    mi = (di.year * 12 + di.month - 1).to_numpy()
    return mi.astype(float), di.month.to_numpy().astype(float), di


def _its_design(
    t: np.ndarray, cal_month: np.ndarray, t0: float, seasonality: bool, harmonics: int,
    slope_change: bool, counterfactual: bool = False,
) -> pd.DataFrame:
    post = (t >= t0).astype(float)
    cols = {"const": np.ones_like(t), "time": t - t[0]}
    cols["level"] = np.zeros_like(t) if counterfactual else post
    if slope_change:
        cols["slope"] = np.zeros_like(t) if counterfactual else (t - t0) * post
    if seasonality:
        for k in range(1, harmonics + 1):
            cols[f"sin{k}"] = np.sin(2 * np.pi * k * cal_month / 12)
            cols[f"cos{k}"] = np.cos(2 * np.pi * k * cal_month / 12)
    return pd.DataFrame(cols)


def interrupted_time_series(
    counts: ArrayLike,
    population: ArrayLike,
    dates: ArrayLike,
    start: Any,
    *,
    seasonality: bool = True,
    harmonics: int = 2,
    overdispersion: bool = True,
    slope_change: bool = True,
    follow_up_months: int | None = 12,
    confidence: float = 0.95,
) -> ITSResult:
    """Segmented Poisson regression for an interrupted monthly time series.

    Method (Lopez Bernal, Cummins & Gasparrini 2017, Int J Epidemiol 46:348-355,
    "Interrupted time series regression for the evaluation of public health
    interventions: a tutorial"): a Poisson GLM (``statsmodels``) of the monthly
    counts with offset log(population) and terms

    * ``time``: months since the first month (underlying trend);
    * ``level``: 1 from the month containing ``start`` on (step change);
    * ``slope``: months since ``start`` (0 in the first post month) after
      ``start`` (``slope_change=True``), so ``level`` is the rate ratio in the
      first month after ``start``;
    * Fourier terms sin/cos(2 pi k m / 12), k = 1..``harmonics``, for calendar
      month m (``seasonality=True``; as ``tsModel::harmonic(month, 2, 12)``).

    With ``overdispersion=True`` the fit is quasi-Poisson: standard errors scaled
    by the Pearson chi-square / residual df (statsmodels ``scale='X2'``, as R's
    ``family=quasipoisson``).  Wald limits use the normal quantile (as
    ``Epi::ci.lin``).

    Overall effect: ratio of the fitted to the counterfactual (level and slope
    terms set to 0) expected total over the first ``follow_up_months`` months
    from ``start`` (all post months if None or more than available).  Its CI is
    from the delta method on the log ratio using the coefficient covariance
    (deterministic, no simulation).  The counterfactual band is exp(x'b +/- z
    sqrt(x'Vx)) per month.

    ``dates`` are month dates (anything ``pd.to_datetime`` accepts); ``start``
    is the first month of the intervention (any day in it).
    """
    y = _arr(counts)
    pop = _arr(population)
    if y.ndim != 1 or pop.shape != y.shape:
        raise ValueError("counts and population must be 1-D and the same length")
    if np.any(np.isnan(y)) or np.any(np.isnan(pop)) or np.any(pop <= 0):
        raise ValueError("counts and population must be present and population > 0")
    import statsmodels.api as sm  # local import keeps module import light

    t, cal, di = _month_index(dates)
    ts = start.to_timestamp() if isinstance(start, pd.Period) else pd.Timestamp(start)
    t0 = float(ts.year * 12 + ts.month - 1)
    post = t >= t0
    n_pre, n_post = int((~post).sum()), int(post.sum())
    if n_pre < 3 or n_post < (2 if slope_change else 1):
        raise ValueError("need at least 3 months before start and 1 after (2 with slope_change)")
    X = _its_design(t, cal, t0, seasonality, harmonics, slope_change)
    Xcf = _its_design(t, cal, t0, seasonality, harmonics, slope_change, counterfactual=True)
    offset = np.log(pop)
    model = sm.GLM(y, X, family=sm.families.Poisson(), offset=offset)
    res = model.fit(scale="X2" if overdispersion else 1.0)
    beta = res.params
    dispersion = float(res.pearson_chi2 / res.df_resid)
    scale = float(res.scale)
    V = res.cov_params()
    z = _z(confidence)

    def effect(name: str) -> Effect:
        b, se = float(beta[name]), float(np.sqrt(V.loc[name, name]))
        return Effect(float(np.exp(b)), float(np.exp(b - z * se)), float(np.exp(b + z * se)),
                      confidence)

    eta = X.to_numpy() @ beta.to_numpy() + offset
    eta_cf = Xcf.to_numpy() @ beta.to_numpy() + offset
    mu, mu_cf = np.exp(eta), np.exp(eta_cf)
    Vm = V.to_numpy()
    se_cf = np.sqrt(np.einsum("ij,jk,ik->i", Xcf.to_numpy(), Vm, Xcf.to_numpy()))

    post_idx = np.flatnonzero(post)
    fu = n_post if follow_up_months is None else min(int(follow_up_months), n_post)
    win = post_idx[t[post_idx] < t0 + fu]
    F, E = mu[win].sum(), mu_cf[win].sum()
    grad = (mu[win] @ X.to_numpy()[win]) / F - (mu_cf[win] @ Xcf.to_numpy()[win]) / E
    se_log = float(np.sqrt(grad @ Vm @ grad))
    ratio = F / E
    overall = Effect(float(ratio), float(ratio * np.exp(-z * se_log)),
                     float(ratio * np.exp(z * se_log)), confidence)
    idx = pd.PeriodIndex(di, freq="M")
    return ITSResult(
        level_change=effect("level"),
        slope_change=effect("slope") if slope_change else None,
        overall=overall,
        follow_up_months=int(len(win)),
        observed_total=float(y[win].sum()),
        expected_total=float(E),
        fitted=pd.Series(mu, index=idx, name="fitted"),
        counterfactual=pd.Series(mu_cf, index=idx, name="counterfactual"),
        counterfactual_lower=pd.Series(np.exp(eta_cf - z * se_cf), index=idx),
        counterfactual_upper=pd.Series(np.exp(eta_cf + z * se_cf), index=idx),
        dispersion=dispersion,
        scale=scale,
        n_pre=n_pre,
        n_post=n_post,
        params=beta,
        cov=V,
        method=("Segmented quasi-Poisson regression" if overdispersion
                else "Segmented Poisson regression")
        + " with log(population) offset (Lopez Bernal et al. 2017)",
        model=res,
    )


def before_after(
    count_before: ArrayLike,
    pop_time_before: ArrayLike,
    count_after: ArrayLike,
    pop_time_after: ArrayLike,
    confidence: float = 0.95,
) -> RateRatioResult:
    """Rate ratio after/before with an exact conditional confidence interval.

    Method: conditional on the total N = a + b (a after, b before), a is
    Binomial(N, pi) with pi = RR T_a / (RR T_a + T_b).  Clopper-Pearson limits
    for pi (beta quantiles: pi_L = Beta(alpha/2; a, b+1), pi_U = Beta(1 - alpha/2;
    a+1, b)) are transformed to RR = pi/(1 - pi) x T_b/T_a (Armitage & Berry;
    as R's ``poisson.test`` for two samples).  Lower limit 0 when a = 0, upper
    limit inf when b = 0.  Two-sided exact p-value: twice the smaller binomial
    tail under RR = 1, capped at 1.
    """
    scalar = _is_scalar(count_before, pop_time_before, count_after, pop_time_after)
    b, tb, a, ta = (_arr(v) for v in (count_before, pop_time_before, count_after, pop_time_after))
    if np.any(a < 0) or np.any(b < 0):
        raise ValueError("counts must be >= 0")
    if np.any(ta <= 0) or np.any(tb <= 0):
        raise ValueError("person-time must be > 0")
    alpha = 1 - _check_confidence(confidence)
    with np.errstate(divide="ignore", invalid="ignore"):
        rr = (a / ta) / (b / tb)
        pl = np.where(a == 0, 0.0, stats.beta.ppf(alpha / 2, a, b + 1))
        pu = np.where(b == 0, 1.0, stats.beta.ppf(1 - alpha / 2, a + 1, b))
        lower = pl / (1 - pl) * tb / ta
        upper = np.where(pu >= 1, np.inf, pu / (1 - pu) * tb / ta)
        p0 = ta / (ta + tb)
        nn = a + b
        pv = np.minimum(1.0, 2 * np.minimum(stats.binom.cdf(a, nn, p0), stats.binom.sf(a - 1, nn, p0)))
    return RateRatioResult(_out(rr, scalar), _out(lower, scalar), _out(upper, scalar),
                           _out(pv, scalar))


def difference_in_differences(
    count_before: ArrayLike,
    pop_time_before: ArrayLike,
    count_after: ArrayLike,
    pop_time_after: ArrayLike,
    comparator_count_before: ArrayLike,
    comparator_pop_time_before: ArrayLike,
    comparator_count_after: ArrayLike,
    comparator_pop_time_after: ArrayLike,
    confidence: float = 0.95,
) -> RateRatioResult:
    """Ratio of rate ratios: (intervention after/before) / (comparator after/before).

    Method: log-scale Wald interval with Poisson variance
    var(log RRR) = 1/a0 + 1/a1 + 1/c0 + 1/c1 (the four counts); identical to
    the interaction term of a saturated Poisson GLM (group x period with
    log person-time offset).  p-value from the Wald z statistic.  NaN when any
    count is zero.
    """
    scalar = _is_scalar(count_before, pop_time_before, count_after, pop_time_after,
                        comparator_count_before, comparator_pop_time_before,
                        comparator_count_after, comparator_pop_time_after)
    a0, t0, a1, t1, c0, s0, c1, s1 = (_arr(v) for v in (
        count_before, pop_time_before, count_after, pop_time_after,
        comparator_count_before, comparator_pop_time_before,
        comparator_count_after, comparator_pop_time_after))
    for cnt in (a0, a1, c0, c1):
        if np.any(cnt < 0):
            raise ValueError("counts must be >= 0")
    for pt in (t0, t1, s0, s1):
        if np.any(pt <= 0):
            raise ValueError("person-time must be > 0")
    z = _z(confidence)
    with np.errstate(divide="ignore", invalid="ignore"):
        zero = (a0 == 0) | (a1 == 0) | (c0 == 0) | (c1 == 0)
        lrrr = np.log(a1 / t1) - np.log(a0 / t0) - np.log(c1 / s1) + np.log(c0 / s0)
        se = np.sqrt(1 / a0 + 1 / a1 + 1 / c0 + 1 / c1)
        ratio = np.where(zero, np.nan, np.exp(lrrr))
        lower = np.where(zero, np.nan, np.exp(lrrr - z * se))
        upper = np.where(zero, np.nan, np.exp(lrrr + z * se))
        pv = np.where(zero, np.nan, 2 * stats.norm.sf(np.abs(lrrr / se)))
    return RateRatioResult(_out(ratio, scalar), _out(lower, scalar), _out(upper, scalar),
                           _out(pv, scalar))


def _baseline_dispersion(y: np.ndarray) -> float:
    """Pearson dispersion of a quasi-Poisson fit of the baseline with a linear trend
    (plus 2 harmonics when there are at least 24 months); floored at 1."""
    import statsmodels.api as sm

    k = len(y)
    t = np.arange(k, dtype=float)
    cols = [np.ones(k), t]
    if k >= 24:
        for h in (1, 2):
            cols += [np.sin(2 * np.pi * h * t / 12), np.cos(2 * np.pi * h * t / 12)]
    X = np.column_stack(cols)
    if k - X.shape[1] < 2 or np.all(y == y[0]):
        return 1.0
    res = sm.GLM(y, X, family=sm.families.Poisson()).fit()
    return float(max(1.0, res.pearson_chi2 / res.df_resid))


def detectable_effect(
    baseline_monthly_counts: ArrayLike,
    follow_up_months: int,
    power: float = 0.8,
    alpha: float = 0.05,
    *,
    dispersion: float | None = None,
    design: Literal["before_after", "its"] = "before_after",
) -> DetectableEffect:
    """Smallest rate ratio detectable with the given power at two-sided level ``alpha``.

    The baseline is B = len(baseline_monthly_counts) months with mean monthly
    count lambda; the follow-up has F = ``follow_up_months`` months; phi is the
    overdispersion (default: Pearson chi-square / df of a quasi-Poisson fit to
    the baseline with a linear trend, plus two annual harmonics when B >= 24,
    floored at 1; pass ``dispersion`` to override).

    ``design="before_after"`` (default): Wald test of log RR comparing the
    follow-up total with the baseline total, var(log RR) = phi (1/(lambda B) +
    1/(lambda RR F)).  The detectable RR solves
    |log RR| = (z_{1-alpha/2} + z_{power}) sqrt(var(log RR)), separately for
    RR < 1 (reduction) and RR > 1 (increase).

    ``design="its"``: same equation with var(log RR) the variance of the level
    change in a segmented Poisson regression (intercept, linear trend, level)
    over the B + F months with expected counts lambda (baseline) and lambda RR
    (follow-up): phi [(X'WX)^-1]_level.  Larger than the before/after variance
    because the trend must be extrapolated.

    Returns a :class:`DetectableEffect`; ``reduction_pct`` is 100 (1 - RR_low).
    """
    y = _arr(baseline_monthly_counts)
    if y.ndim != 1 or len(y) < 2 or np.any(np.isnan(y)) or np.any(y < 0):
        raise ValueError("baseline_monthly_counts must be >= 2 non-missing counts")
    if follow_up_months < 1:
        raise ValueError("follow_up_months must be >= 1")
    if not 0 < power < 1 or not 0 < alpha < 1:
        raise ValueError("power and alpha must lie in (0, 1)")
    lam = float(y.mean())
    if lam <= 0:
        raise ValueError("baseline counts are all zero")
    B, F = len(y), int(follow_up_months)
    phi = _baseline_dispersion(y) if dispersion is None else float(dispersion)
    k = stats.norm.ppf(1 - alpha / 2) + stats.norm.ppf(power)

    if design == "before_after":
        def var(rr: float) -> float:
            return phi * (1 / (lam * B) + 1 / (lam * rr * F))
    elif design == "its":
        t = np.arange(B + F, dtype=float)
        lvl = (t >= B).astype(float)
        X = np.column_stack([np.ones(B + F), t, lvl])

        def var(rr: float) -> float:
            w = lam * np.where(lvl == 1, rr, 1.0)
            return float(phi * np.linalg.inv(X.T @ (X * w[:, None]))[2, 2])
    else:
        raise ValueError("design must be 'before_after' or 'its'")

    def f(logrr: float) -> float:
        return abs(logrr) - k * np.sqrt(var(np.exp(logrr)))

    # Reduction: var(log RR) grows as RR -> 0, so f has a first root near 0 and
    # may turn negative again; bracket the first sign change on a grid.
    grid = -np.linspace(1e-9, 15.0, 3001)
    fv = np.array([f(g) for g in grid])
    pos = np.flatnonzero(fv > 0)
    if len(pos) == 0:
        lo = -np.inf  # no reduction is detectable with this power
    else:
        j = pos[0]
        lo = optimize.brentq(f, grid[j], grid[j - 1], xtol=1e-13) if j > 0 else grid[0]
    hi = optimize.brentq(f, 1e-9, 15.0, xtol=1e-13)
    return DetectableEffect(
        reduction_pct=float((1 - np.exp(lo)) * 100),
        increase_pct=float((np.exp(hi) - 1) * 100),
        ratio_low=float(np.exp(lo)),
        ratio_high=float(np.exp(hi)),
        baseline_mean=lam,
        dispersion=phi,
        design=design,
    )
