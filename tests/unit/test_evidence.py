"""Tests for the evidence-of-benefit functions in pipelines.stats.

Interrupted time series: validated on the worked example of Lopez Bernal,
Cummins & Gasparrini (2017) "Interrupted time series regression for the
evaluation of public health interventions: a tutorial", Int J Epidemiol
46(1):348-355, doi:10.1093/ije/dyw098: monthly acute coronary events (ACEs) in
Sicily, January 2002 - November 2006 (59 months), smoking ban from January
2005 (month 37).  The data are transcribed below from the authors' published
dataset ``sicily.csv`` (https://github.com/gasparrini/2017_lopezbernal_IJE_codedata,
commit 8545626); the model specifications are those of the authors' ``Rcode.R``
in the same repository (models 1-4, after the 2020 correction).
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import statsmodels.api as sm
from scipy import optimize, stats

try:
    from pipelines import stats as S
except ModuleNotFoundError:  # package not installed in the venv: import from the repo root
    sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
    from pipelines import stats as S

# sicily.csv (Lopez Bernal et al. 2017): aces = monthly count of acute coronary episodes,
# stdpop = age-standardised population, Jan 2002 .. Nov 2006.
ACES = [
    728, 659, 791, 734, 757, 726, 760, 740, 720, 814, 795, 858,
    887, 766, 851, 769, 781, 756, 766, 752, 765, 831, 879, 928,
    914, 808, 937, 840, 916, 828, 845, 818, 860, 839, 887, 886,
    831, 796, 833, 820, 877, 758, 767, 738, 781, 843, 850, 908,
    1021, 859, 976, 888, 962, 838, 810, 876, 843, 936, 912,
]
STDPOP = [
    379875.3, 376495.5, 377040.8, 377116.4, 377383.4, 374113.1,
    379513.3, 376295.5, 374653.2, 378485.6, 375955.5, 378349.7,
    376762.4, 379032.3, 379360.4, 376162.0, 377972.4, 381830.7,
    379888.6, 380872.2, 380966.9, 381240.4, 382104.9, 381802.7,
    381656.3, 383680.0, 383504.2, 386462.9, 383783.1, 380836.8,
    383483.0, 380906.2, 382926.8, 384052.4, 384449.6, 383428.4,
    388153.2, 388373.2, 386470.1, 386033.2, 383686.4, 385509.3,
    385901.9, 386516.6, 388436.5, 383255.2, 390148.7, 385874.9,
    391613.6, 391750.4, 394005.6, 391364.9, 391664.6, 389022.3,
    391878.5, 388575.3, 392989.0, 390018.8, 390712.3,
]
DATES = pd.date_range("2002-01-01", periods=59, freq="MS")
BAN = "2005-01-01"


def sicily(**kw):
    return S.interrupted_time_series(ACES, STDPOP, DATES, BAN, **kw)


def r3(e: S.Effect) -> tuple[float, float, float]:
    return (round(e.ratio, 3), round(e.lower, 3), round(e.upper, 3))


# ---------------------------------------------------------------------------
# Independent reference: Poisson IRLS written from scratch (no statsmodels)
# ---------------------------------------------------------------------------

def irls_poisson(X: np.ndarray, y: np.ndarray, offset: np.ndarray, quasi: bool):
    beta = np.zeros(X.shape[1])
    beta[0] = np.log(y.sum() / np.exp(offset).sum())
    for _ in range(100):
        mu = np.exp(X @ beta + offset)
        z = X @ beta + (y - mu) / mu
        xtwx = X.T @ (X * mu[:, None])
        new = np.linalg.solve(xtwx, X.T @ (mu * z))
        if np.max(np.abs(new - beta)) < 1e-13:
            beta = new
            break
        beta = new
    mu = np.exp(X @ beta + offset)
    phi = np.sum((y - mu) ** 2 / mu) / (len(y) - X.shape[1])
    cov = np.linalg.inv(X.T @ (X * mu[:, None])) * (phi if quasi else 1.0)
    return beta, cov, phi


def tutorial_design(harmonics: bool, slope: bool) -> np.ndarray:
    # Rcode.R: aces ~ offset(log(stdpop)) + smokban + time [+ I(time-36):smokban]
    #          [+ harmonic(month, 2, 12)]
    time = np.arange(1, 60, dtype=float)
    smokban = (time >= 37).astype(float)
    month = (time - 1) % 12 + 1
    cols = [np.ones(59), smokban, time]
    if slope:
        cols.append((time - 36) * smokban)
    if harmonics:
        for k in (1, 2):
            cols += [np.sin(2 * np.pi * k * month / 12), np.cos(2 * np.pi * k * month / 12)]
    return np.column_stack(cols)


def wald(beta, cov, j, z=stats.norm.ppf(0.975)):
    se = np.sqrt(cov[j, j])
    return np.exp([beta[j], beta[j] - z * se, beta[j] + z * se])


# ---------------------------------------------------------------------------
# Lopez Bernal et al. (2017) worked example
# ---------------------------------------------------------------------------

def test_sicily_model1_poisson_step_change():
    # Rcode.R model1: Poisson, step change, no seasonality; round(ci.lin(model1,Exp=T),3)
    r = sicily(seasonality=False, overdispersion=False, slope_change=False)
    assert r3(r.level_change) == (0.894, 0.865, 0.925)
    assert (r.n_pre, r.n_post) == (36, 23)
    y = np.array(ACES, float)
    beta, cov, _ = irls_poisson(tutorial_design(False, False), y, np.log(STDPOP), quasi=False)
    np.testing.assert_allclose(
        [r.level_change.ratio, r.level_change.lower, r.level_change.upper],
        wald(beta, cov, 1), rtol=1e-8)


def test_sicily_model2_quasipoisson():
    # Rcode.R model2: quasi-Poisson; dispersion = Pearson X2 / df
    r = sicily(seasonality=False, slope_change=False)
    assert r3(r.level_change) == (0.894, 0.839, 0.953)
    assert round(r.dispersion, 3) == 3.559
    beta, cov, phi = irls_poisson(tutorial_design(False, False), np.array(ACES, float),
                                  np.log(STDPOP), quasi=True)
    assert r.dispersion == pytest.approx(phi, rel=1e-8)
    np.testing.assert_allclose(
        [r.level_change.ratio, r.level_change.lower, r.level_change.upper],
        wald(beta, cov, 1), rtol=1e-8)


def test_sicily_model3_seasonally_adjusted():
    # Rcode.R model3: quasi-Poisson + harmonic(month,2,12): the tutorial's main result,
    # ci.lin(model3,Exp=T)["smokban",5:7] and the annual trend exp(12*b_time).
    r = sicily(slope_change=False)
    assert r3(r.level_change) == (0.885, 0.839, 0.933)
    assert round(float(np.exp(12 * r.params["time"])), 3) == 1.067
    assert round(r.dispersion, 3) == 2.262
    beta, cov, phi = irls_poisson(tutorial_design(True, False), np.array(ACES, float),
                                  np.log(STDPOP), quasi=True)
    np.testing.assert_allclose(
        [r.level_change.ratio, r.level_change.lower, r.level_change.upper],
        wald(beta, cov, 1), rtol=1e-8)
    # With a step change only, the overall effect over the follow-up is the step itself.
    assert r.overall.ratio == pytest.approx(r.level_change.ratio, rel=1e-10)
    assert r.overall.lower == pytest.approx(r.level_change.lower, rel=1e-8)
    assert "11% lower than expected in the 12 months after the smoking ban (95% CI 7% to 16%)" \
        in r.sentence("Acute coronary events", "the smoking ban")


def test_sicily_model4_slope_change():
    # Rcode.R model4 adds I(time-36):smokban (1 in the first post month).  Our slope term is
    # 0 in the first post month, so our level change = exp(b_smokban + b_slope) of model4;
    # the slope change is the same parameter.
    r = sicily()
    assert r3(r.slope_change) == (1.001, 0.998, 1.005)
    beta, cov, phi = irls_poisson(tutorial_design(True, True), np.array(ACES, float),
                                  np.log(STDPOP), quasi=True)
    assert round(float(np.exp(beta[1])), 3) == 0.876
    np.testing.assert_allclose(
        [r.slope_change.ratio, r.slope_change.lower, r.slope_change.upper],
        wald(beta, cov, 3), rtol=1e-8)
    g = np.zeros(len(beta))
    g[[1, 3]] = 1
    se = np.sqrt(g @ cov @ g)
    est = beta[1] + beta[3]
    z = stats.norm.ppf(0.975)
    np.testing.assert_allclose(
        [r.level_change.ratio, r.level_change.lower, r.level_change.upper],
        np.exp([est, est - z * se, est + z * se]), rtol=1e-8)
    assert r.dispersion == pytest.approx(phi, rel=1e-8)


def test_sicily_overall_effect_delta_method_vs_simulation():
    r = sicily()
    assert r.follow_up_months == 12
    # observed total over Jan-Dec 2005
    assert r.observed_total == sum(ACES[36:48])
    # Delta-method CI vs simulation from the coefficient covariance (fixed seed).
    rng = np.random.default_rng(20170101)
    draws = rng.multivariate_normal(r.params.to_numpy(), r.cov.to_numpy(), size=20000)
    X = r.model.model.exog[36:48]
    Xcf = X.copy()
    cols = list(r.params.index)
    Xcf[:, cols.index("level")] = 0
    Xcf[:, cols.index("slope")] = 0
    off = np.log(STDPOP[36:48])
    ratio = np.exp(draws @ X.T + off).sum(1) / np.exp(draws @ Xcf.T + off).sum(1)
    lo, hi = np.percentile(ratio, [2.5, 97.5])
    assert r.overall.lower == pytest.approx(lo, rel=0.01)
    assert r.overall.upper == pytest.approx(hi, rel=0.01)
    assert r.overall.ratio == pytest.approx(
        r.fitted.iloc[36:48].sum() / r.counterfactual.iloc[36:48].sum(), rel=1e-12)
    assert r.expected_total == pytest.approx(r.counterfactual.iloc[36:48].sum(), rel=1e-12)


def test_sicily_series_outputs():
    r = sicily()
    assert len(r.fitted) == 59 and str(r.fitted.index[0]) == "2002-01"
    # before the ban the counterfactual is the fitted series
    np.testing.assert_allclose(r.fitted.iloc[:36], r.counterfactual.iloc[:36], rtol=1e-12)
    assert (r.counterfactual_lower < r.counterfactual).all()
    assert (r.counterfactual < r.counterfactual_upper).all()
    # fitted values sum to the observed total (Poisson GLM with intercept)
    assert r.fitted.sum() == pytest.approx(sum(ACES), rel=1e-8)
    s = sicily(follow_up_months=None)
    assert s.follow_up_months == 23


def test_its_accepts_period_dates_and_validates():
    r = S.interrupted_time_series(ACES, STDPOP, pd.period_range("2002-01", periods=59, freq="M"),
                                  pd.Period("2005-01", "M"), slope_change=False)
    assert r3(r.level_change) == (0.885, 0.839, 0.933)
    with pytest.raises(ValueError):
        S.interrupted_time_series(ACES[:10], STDPOP[:10], DATES[:10], "2002-02-01")


# ---------------------------------------------------------------------------
# Synthetic series (fixed seed)
# ---------------------------------------------------------------------------

def synthetic(effect: float, seed: int, months: int = 36, start: int = 18):
    rng = np.random.default_rng(seed)
    t = np.arange(months)
    pop = np.full(months, 250_000.0)
    rate = 40e-5 * np.exp(0.004 * t + 0.08 * np.sin(2 * np.pi * t / 12))
    rate = rate * np.where(t >= start, effect, 1.0)
    y = rng.poisson(pop * rate)
    dates = pd.date_range("2021-01-01", periods=months, freq="MS")
    return y, pop, dates, dates[start]


def test_synthetic_30pct_drop_recovered():
    # 36 months, rate falls by 30% from month 19 (index 18)
    y, pop, dates, start = synthetic(0.7, seed=11)
    r = S.interrupted_time_series(y, pop, dates, start)
    assert r.level_change.lower < 0.7 < r.level_change.upper
    assert r.overall.lower < 0.7 < r.overall.upper
    assert r.overall.significant and r.overall.upper < 1
    assert (r.n_pre, r.n_post) == (18, 18)
    assert "lower than expected in the 12 months after" in r.sentence("Admissions", "launch")


def test_synthetic_null_series_not_significant():
    y, pop, dates, start = synthetic(1.0, seed=12)
    r = S.interrupted_time_series(y, pop, dates, start)
    assert not r.overall.significant
    assert r.overall.lower < 1 < r.overall.upper
    assert "not statistically significant" in r.sentence("Admissions", "launch")
    # (For this seed the level change alone is significant at 5% (1.17, 1.04-1.32): the
    # expected 1-in-20 chance; the replicate test below checks the false-positive rate.)


def test_synthetic_coverage_and_false_positive_rate():
    # 60 fixed-seed replicates each.  Planted 30% drop: the 95% CI of the overall effect
    # should cover 0.7 in ~95% (binomial 99% range for 60 trials: >= 52).  Null series: the
    # level change / overall effect should be significant in ~5% (99% range: <= 8).
    hits = false_level = false_overall = 0
    for seed in range(60):
        y, pop, dates, start = synthetic(0.7, seed=1000 + seed)
        r = S.interrupted_time_series(y, pop, dates, start)
        hits += r.overall.lower < 0.7 < r.overall.upper
        y, pop, dates, start = synthetic(1.0, seed=2000 + seed)
        r = S.interrupted_time_series(y, pop, dates, start)
        false_level += r.level_change.significant
        false_overall += r.overall.significant
    assert hits >= 52
    assert false_level <= 8 and false_overall <= 8


# ---------------------------------------------------------------------------
# Before / after: exact conditional rate ratio
# ---------------------------------------------------------------------------

def rr_limits_by_root_finding(a, ta, b, tb, conf=0.95):
    """Exact conditional limits solved directly on the rate-ratio scale."""
    n, alpha = a + b, 1 - conf

    def pi(rr):
        return rr * ta / (rr * ta + tb)

    lo = 0.0 if a == 0 else optimize.brentq(
        lambda lr: stats.binom.sf(a - 1, n, pi(np.exp(lr))) - alpha / 2, -30, 30, xtol=1e-14)
    hi = np.inf if b == 0 else optimize.brentq(
        lambda lr: stats.binom.cdf(a, n, pi(np.exp(lr))) - alpha / 2, -30, 30, xtol=1e-14)
    return (np.exp(lo) if a else 0.0), (np.exp(hi) if b else np.inf)


@pytest.mark.parametrize("b,tb,a,ta", [(120, 10_000, 84, 10_500), (15, 2.5, 4, 3.0),
                                       (1, 100, 7, 100), (300, 1e5, 310, 1.2e5)])
@pytest.mark.parametrize("conf", [0.95, 0.998])
def test_before_after_exact_limits(b, tb, a, ta, conf):
    r = S.before_after(b, tb, a, ta, conf)
    assert r.ratio == pytest.approx((a / ta) / (b / tb), rel=1e-12)
    lo, hi = rr_limits_by_root_finding(a, ta, b, tb, conf)
    assert r.lower == pytest.approx(lo, rel=1e-6)
    assert r.upper == pytest.approx(hi, rel=1e-6)


def test_before_after_edges_and_vectorised():
    r = S.before_after(10, 1.0, 0, 1.0)
    assert r.ratio == 0 and r.lower == 0
    r = S.before_after(0, 1.0, 5, 1.0)
    assert np.isinf(r.upper)
    v = S.before_after([120, 15], [10_000, 2.5], [84, 4], [10_500, 3.0])
    s = S.before_after(15, 2.5, 4, 3.0)
    assert v.lower[1] == s.lower and v.upper[1] == s.upper and v.p_value[1] == s.p_value
    # equal rates -> p-value 1
    assert S.before_after(50, 1.0, 50, 1.0).p_value == pytest.approx(1.0)
    assert S.before_after(200, 1.0, 120, 1.0).p_value < 0.001


# ---------------------------------------------------------------------------
# Difference in differences
# ---------------------------------------------------------------------------

@pytest.mark.filterwarnings("ignore::RuntimeWarning", "ignore:Perfect separation")
def test_did_equals_saturated_poisson_glm_interaction():
    a0, t0, a1, t1 = 210, 50_000, 150, 52_000
    c0, s0, c1, s1 = 400, 90_000, 390, 91_000
    r = S.difference_in_differences(a0, t0, a1, t1, c0, s0, c1, s1)
    y = np.array([a0, a1, c0, c1], float)
    pt = np.array([t0, t1, s0, s1], float)
    grp = np.array([1, 1, 0, 0.0])
    after = np.array([0, 1, 0, 1.0])
    X = np.column_stack([np.ones(4), grp, after, grp * after])
    fit = sm.GLM(y, X, family=sm.families.Poisson(), offset=np.log(pt)).fit(tol=1e-14)
    b, se = fit.params[3], fit.bse[3]
    z = stats.norm.ppf(0.975)
    np.testing.assert_allclose([r.ratio, r.lower, r.upper],
                               np.exp([b, b - z * se, b + z * se]), rtol=1e-7)
    assert r.p_value == pytest.approx(fit.pvalues[3], rel=1e-6)
    hand = (a1 / t1) / (a0 / t0) / ((c1 / s1) / (c0 / s0))
    assert r.ratio == pytest.approx(hand, rel=1e-12)


def test_did_vectorised_and_zero():
    v = S.difference_in_differences([10, 0], 1, [5, 5], 1, [10, 10], 1, [10, 10], 1, 0.998)
    assert v.ratio[0] == pytest.approx(0.5) and np.isnan(v.ratio[1])
    z = stats.norm.ppf(0.999)
    se = np.sqrt(1 / 10 + 1 / 5 + 1 / 10 + 1 / 10)
    assert v.lower[0] == pytest.approx(0.5 * np.exp(-z * se), rel=1e-12)


# ---------------------------------------------------------------------------
# Detectable effect
# ---------------------------------------------------------------------------

def test_detectable_effect_before_after_formula():
    # phi = 1 given; solve |log RR| = (z_.975 + z_.8) sqrt(1/(lam B) + 1/(lam RR F)) directly
    base = np.full(24, 100.0)
    d = S.detectable_effect(base, 12, dispersion=1.0)
    k = stats.norm.ppf(0.975) + stats.norm.ppf(0.8)
    lam, B, F = 100.0, 24, 12
    root = optimize.brentq(lambda rr: -np.log(rr) - k * np.sqrt(1 / (lam * B) + 1 / (lam * rr * F)),
                           0.5, 0.999999)
    assert d.ratio_low == pytest.approx(root, rel=1e-9)
    assert d.reduction_pct == pytest.approx((1 - root) * 100, rel=1e-9)
    assert d.dispersion == 1.0 and d.baseline_mean == 100.0
    # constant baseline -> no overdispersion estimated beyond the floor of 1
    assert S.detectable_effect(base, 12).dispersion == 1.0


def test_detectable_effect_has_stated_power_by_simulation():
    base = np.full(12, 60.0)
    d = S.detectable_effect(base, 6, dispersion=1.0)
    rng = np.random.default_rng(7)
    n = 20000
    before = rng.poisson(60.0 * 12, n)
    after = rng.poisson(60.0 * d.ratio_low * 6, n)
    logrr = np.log((after / 6) / (before / 12))
    se = np.sqrt(1 / before + 1 / after)
    power = np.mean(np.abs(logrr / se) > stats.norm.ppf(0.975))
    assert power == pytest.approx(0.8, abs=0.015)


@pytest.mark.filterwarnings("ignore:Perfect separation")
def test_detectable_effect_its_variance_matches_glm():
    base = np.full(24, 50.0)
    d = S.detectable_effect(base, 12, dispersion=1.0, design="its")
    # At the detected ratio, the level-change variance of a Poisson GLM fitted to the
    # expected counts equals the one used by the formula.
    t = np.arange(36.0)
    lvl = (t >= 24).astype(float)
    mu = 50.0 * np.where(lvl == 1, d.ratio_low, 1.0)
    X = np.column_stack([np.ones(36), t, lvl])
    fit = sm.GLM(mu, X, family=sm.families.Poisson()).fit()
    k = stats.norm.ppf(0.975) + stats.norm.ppf(0.8)
    assert -np.log(d.ratio_low) == pytest.approx(k * fit.bse[2], rel=1e-6)
    ba = S.detectable_effect(base, 12, dispersion=1.0)
    assert d.reduction_pct > ba.reduction_pct  # trend extrapolation costs power


def test_detectable_effect_overdispersion_widens():
    rng = np.random.default_rng(3)
    over = rng.negative_binomial(n=20, p=20 / (20 + 80.0), size=36).astype(float)
    d = S.detectable_effect(over, 12)
    assert d.dispersion > 1.5
    plain = S.detectable_effect(over, 12, dispersion=1.0)
    assert d.reduction_pct > plain.reduction_pct
    assert d.increase_pct > 0
