"""Tests for pipelines.stats: indicator statistics against PHE/OHID reference values.

Reference values are transcribed (as numbers, with attribution) from the public
test data of the R package PHEindicatormethods,
https://github.com/ukhsa-collaboration/PHEindicatormethods (commit 093fd28),
folder tests/testthat/, and from the unit tests of PHE's Fingertips code,
https://github.com/ukhsa-collaboration/fingertips-open
(PholioVisualisationWS/AnalysisTest/TrendMarkerCalculatorTest.cs).  Other
expectations are computed independently inside the tests (scipy / statsmodels
routines or formulas written a different way from the module).
"""

from __future__ import annotations

import math
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import stats
from statsmodels.stats.proportion import proportion_confint

try:
    from pipelines import stats as S
except ModuleNotFoundError:  # package not installed in the venv: import from the repo root
    sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
    from pipelines import stats as S

REL = 1e-6


def close(a, b, rel=REL):
    np.testing.assert_allclose(np.asarray(a, float), np.asarray(b, float), rtol=rel, atol=0,
                               equal_nan=True)


# ---------------------------------------------------------------------------
# Byar's and exact Poisson limits
# ---------------------------------------------------------------------------

# PHEindicatormethods tests/testthat/testdata_Byars_Wilson.xlsx, sheet testdata_B_W
# (expected byars_lower / byars_upper): (count, confidence, lower, upper)
BYARS = [
    (65, 0.95, 50.163187710459454, 82.84913854593984),
    (1045, 0.95, 982.5932018073325, 1110.33121298565),
    (1, 0.95, 0.01307213290150435, 5.5637555824752605),
    (65, 0.998, 42.8802614714802, 94.00029084431802),
    (1045, 0.998, 947.9407035610374, 1148.806160988033),
    (10, 0.998, 2.916318374695686, 24.193724927880535),
]


@pytest.mark.parametrize("count,conf,lower,upper", BYARS)
def test_byars_matches_phe(count, conf, lower, upper):
    close(S.byars_lower(count, conf), lower)
    close(S.byars_upper(count, conf), upper)


def test_byars_lower_negative_is_nan_and_upper_still_defined():
    # testdata_B_W last row: count 1 at 99.8% -> lower NA, upper 9.362180217908362
    assert math.isnan(S.byars_lower(1, 0.998))
    close(S.byars_upper(1, 0.998), 9.362180217908362)


@pytest.mark.parametrize("conf", [0.9, 0.95, 0.998, 0.5])
def test_exact_poisson_equals_gamma_quantiles(conf):
    # Independent route: Poisson exact limits are gamma quantiles (Garwood 1936).
    x = np.arange(0, 30)
    a = 1 - conf
    lo = np.where(x == 0, 0.0, stats.gamma.ppf(a / 2, np.maximum(x, 1e-300)))
    hi = stats.gamma.ppf(1 - a / 2, x + 1)
    close(S.exact_poisson_lower(x, conf), lo, 1e-9)
    close(S.exact_poisson_upper(x, conf), hi, 1e-9)


def test_count_ci_switches_method_at_10():
    c = S.count_ci(np.array([9.0, 10.0]))
    close(c.lower[0], S.exact_poisson_lower(9))
    close(c.lower[1], S.byars_lower(10))
    assert S.count_ci(0).lower == 0.0


# ---------------------------------------------------------------------------
# Crude rates
# ---------------------------------------------------------------------------

# PHEindicatormethods tests/testthat/testdata_Rate.xlsx, sheet testdata_Rate (phe_rate):
# (count, denominator, value, lower95, upper95, lower99.8, upper99.8) per 100,000
RATES = [
    (1, 100, 1000.0, 25.317807984289896, 5571.643390938898, 1.0005003335835343, 9233.413476451586),
    (5, 100, 5000.0, 1623.4863901184199, 11668.332079322669, 739.3717319178389, 16454.745203680104),
    (20, 100, 20000.0, 12211.428834875936, 30889.880369197064, 8922.802365144193, 38085.03562504191),
    (65, 100, 65000.0, 50163.18771045945, 82849.13854593984, 42880.261471480204, 94000.290844318),
    (9856, 12345, 79837.99108950992, 78269.49058976758, 81430.01654272141, 77375.90543271053,
     82354.47277095431),
    (7776456, 7564336677, 102.80420256339154, 102.73196005302074, 102.87648334092832,
     102.690317308454, 102.91817639509068),
    (222, 3215, 6905.132192846034, 6026.574877652674, 7875.729370871851, 5560.737695259853,
     8461.04668173341),
    (999, 3456, 28906.25, 27141.30493609052, 30755.833237378414, 26162.147596445768,
     31845.604819822653),
    (250, 220, 113636.36363636365, 99984.94738532876, 128631.14487455782, 92710.00554438953,
     137651.23772147458),  # count > denominator is allowed for rates
]


def test_rate_ci_matches_phe_rate_vectorised():
    a = np.array(RATES, dtype=float)
    r95 = S.rate_ci(a[:, 0], a[:, 1])
    close(r95.value, a[:, 2])
    close(r95.lower, a[:, 3])
    close(r95.upper, a[:, 4])
    r998 = S.rate_ci(a[:, 0], a[:, 1], confidence=0.998)
    close(r998.lower, a[:, 5])
    close(r998.upper, a[:, 6])


def test_rate_ci_multiplier_100():
    # testdata_Rate rows Area1-8 with multiplier 100
    r = S.rate_ci([1, 999], [100, 3456], confidence=0.95, multiplier=100)
    close(r.lower, [0.025317807984289897, 27.14130493609052])
    close(r.upper, [5.571643390938898, 30.755833237378415])


def test_rate_ci_grouped_totals_match_phe():
    # testdata_Rate.xlsx sheet testdata_Rate_g: grouped (summed) counts, 95%
    r = S.rate_ci([2, 10, 444], [200, 200, 6430])
    close(r.lower, [121.104639271983, 2393.724956983782, 6277.688114145780])
    close(r.upper, [3612.343833861979, 9195.729302878237, 7578.304458634362])


def test_rate_ci_scalar_zero_and_nan():
    r = S.rate_ci(0, 1000)
    assert isinstance(r.value, float)
    assert r.value == 0.0 and r.lower == 0.0
    close(r.upper, stats.chi2.ppf(0.975, 2) / 2 / 1000 * 100_000)
    n = S.rate_ci([np.nan, 10], [100, np.nan])
    assert np.isnan(n.value).all() and np.isnan(n.lower).all() and np.isnan(n.upper).all()


def test_rate_ci_validation():
    with pytest.raises(ValueError):
        S.rate_ci(-1, 100)
    with pytest.raises(ValueError):
        S.rate_ci(1, 0)
    with pytest.raises(ValueError):
        S.rate_ci(1, 100, confidence=1.2)


# ---------------------------------------------------------------------------
# Proportions (Wilson)
# ---------------------------------------------------------------------------

# PHEindicatormethods testdata_Proportion.xlsx, sheet testdata_Prop (phe_proportion):
# (x, n, lower95, upper95, lower99.8, upper99.8) as proportions
PROPS = [
    (1, 100, 0.0017674320641406511, 0.054486196178705294, 0.000873065697299977,
     0.1045544528370582),
    (5, 100, 0.02154367915436798, 0.11175046923191911, 0.013865320725997183,
     0.16458852282596442),
    (20, 100, 0.1333669333310325, 0.28882916559315885, 0.10519162066711432, 0.3471109417008601),
    (65, 100, 0.5525444329688797, 0.7363575175690247, 0.4954946574070431, 0.7783540614089697),
    (9856, 12345, 0.7912101752909069, 0.8053640073614909, 0.7869924108419063,
     0.8093061412589626),
    (7776456, 7564336677, 0.0010273201001641094, 0.0010287644578977231, 0.0010269040118442213,
     0.0010291812992698397),
    (222, 3215, 0.060791690363636595, 0.07833956681383633, 0.05647101964624248,
     0.08418414185270134),
    (999, 3456, 0.27418951080009873, 0.30440389662818057, 0.26583995768074953,
     0.3134475449279985),
]


def test_proportion_ci_matches_phe_proportion():
    a = np.array(PROPS, dtype=float)
    r = S.proportion_ci(a[:, 0], a[:, 1])
    close(r.value, a[:, 0] / a[:, 1])
    close(r.lower, a[:, 2])
    close(r.upper, a[:, 3])
    r = S.proportion_ci(a[:, 0], a[:, 1], confidence=0.998, multiplier=100)
    close(r.lower, a[:, 4] * 100)
    close(r.upper, a[:, 5] * 100)


def test_wilson_fractional_numerator_from_phe():
    # testdata_B_W: x = 0.445, n = 1 (Wilson at 95% and 99.8%)
    close(S.wilson_lower(0.445, 1), 0.04381744772058822)
    close(S.wilson_upper(0.445, 1), 0.9334621276979156)
    close(S.wilson_lower(0.445, 1, 0.998), 0.019347006132900975)
    close(S.wilson_upper(0.445, 1, 0.998), 0.9702259947019541)


@settings(max_examples=60, deadline=None)
@given(n=st.integers(1, 10**7), frac=st.floats(0, 1), conf=st.sampled_from([0.9, 0.95, 0.998]))
def test_wilson_equals_statsmodels(n, frac, conf):
    x = int(round(frac * n))
    lo, hi = proportion_confint(x, n, alpha=1 - conf, method="wilson")
    r = S.proportion_ci(x, n, conf)
    assert r.lower == pytest.approx(lo, rel=1e-9, abs=1e-15)
    assert r.upper == pytest.approx(hi, rel=1e-9, abs=1e-15)


def test_proportion_ci_validation():
    with pytest.raises(ValueError):
        S.proportion_ci(5, 4)
    with pytest.raises(ValueError):
        S.proportion_ci(-1, 4)


# ---------------------------------------------------------------------------
# Directly standardised rates
# ---------------------------------------------------------------------------

def test_esp2013():
    assert S.ESP2013.tolist() == [5000, 5500, 5500, 5500, 6000, 6000, 6500, 7000, 7000, 7000,
                                  7000, 6500, 6000, 5500, 5000, 4000, 2500, 1500, 1000]
    assert S.ESP2013.sum() == 100_000
    assert len(S.ESP2013_AGEBANDS) == 19 and S.ESP2013_AGEBANDS[-1] == "90+"


# PHEindicatormethods testdata_DSR_ISR.xlsx, sheet testdata_multiarea (inputs, 19 ESP2013 bands)
POP = [636, 558, 609, 543, 384, 594, 669, 843, 660, 576, 606, 522, 426, 273, 300, 288, 153, 123, 207]
BIG = [127, 25, 18, 21, 12, 27, 48, 27, 29, 32, 32, 34, 45, 65, 38, 68, 74, 82, 91]
SMALL = [12, 4, 3, 2, 3, 4, 8, 2, 2, 3, 4, 5, 6, 8, 5, 6, 5, 5, 4]
TINY = [0, 0, np.nan, 0, 0, 0, 1, 0, 0, 0, 0, 0, 1, 0, 0, 1, 1, 2, 3]


def test_dsr_matches_phe_calculate_dsr():
    # sheet testresults_DSR, multiplier 100,000, 95% and 99.8%
    big = S.dsr(BIG, POP)
    close(big.value, 10430.247991469423)
    close(big.lower, 9717.709067985681)
    close(big.upper, 11178.94091547925)
    assert big.total_count == 895 and big.total_population == 8970 and big.reason == ""
    big998 = S.dsr(BIG, POP, confidence=0.998)
    close(big998.lower, 9323.287880219903)
    close(big998.upper, 11620.595999522058)
    small = S.dsr(SMALL, POP, multiplier=10_000)
    close([small.value, small.lower, small.upper],
          [110.3212025300104, 87.7455767536709, 136.70882227251795])
    small998 = S.dsr(SMALL, POP, confidence=0.998, multiplier=10_000)
    close([small998.lower, small998.upper], [76.36420357939879, 153.00328948244763])


def test_dsr_total_under_10_is_nan_with_reason():
    tiny = S.dsr(TINY, POP)
    assert tiny.total_count == 9
    assert math.isnan(tiny.value) and math.isnan(tiny.lower) and math.isnan(tiny.upper)
    assert tiny.reason == "total count under 10"


def test_dsr_other_standard_esp1976():
    # testdata_DSR_ISR.xlsx sheets testdata_1976 / testresults_DSR (18-band ESP1976), per 10,000
    esp1976 = [8000, 7000, 7000, 7000, 7000, 7000, 7000, 7000, 7000, 7000, 7000, 6000, 5000,
               4000, 3000, 2000, 1000, 1000]
    r = S.dsr(BIG[:18], POP[:18], standard=esp1976, multiplier=10_000)
    close([r.value, r.lower, r.upper], [859.2097585022366, 799.1160931442103, 922.5253880318318])


def test_dsr_vectorised_rows_and_grouped():
    m = S.dsr(np.array([BIG, SMALL, TINY]), POP)
    close(m.value[:2], [10430.247991469423, 1103.212025300104])
    assert np.isnan(m.value[2]) and list(m.reason) == ["", "", "total count under 10"]
    df = pd.DataFrame({
        "area": np.repeat(["big", "small", "tiny"], 19),
        "count": BIG + SMALL + TINY,
        "pop": POP * 3,
    })
    g = S.dsr_by_group(df, "area", "count", "pop")
    assert list(g.area) == ["big", "small", "tiny"]
    close(g.value[:2], [10430.247991469423, 1103.212025300104])
    close(g.lower[:2], [9717.709067985681, 877.455767536709])
    close(g.upper[:2], [11178.94091547925, 1367.0882227251795])
    assert g.reason.tolist() == ["", "", "total count under 10"]
    df["w"] = np.tile(S.ESP2013, 3)
    close(S.dsr_by_group(df, ["area"], "count", "pop", standard="w").value[:2], g.value[:2])


def test_dsr_hand_worked():
    # Two bands, equal weights: DSR = mean of band rates.
    r = S.dsr([10, 30], [1000, 2000], standard=[1, 1], multiplier=1000)
    assert r.value == pytest.approx((10 / 1000 + 30 / 2000) / 2 * 1000, rel=1e-12)
    var = (10 / 1000**2 + 30 / 2000**2) / 4
    lo = r.value + math.sqrt(var / 40) * (S.byars_lower(40) - 40) * 1000
    assert r.lower == pytest.approx(lo, rel=1e-12)


# ---------------------------------------------------------------------------
# Funnel plots
# ---------------------------------------------------------------------------

# PHEindicatormethods tests/testthat/testdata_funnel_prop_outputs.csv (proportions, x100):
# (population, lower 95, upper 95, lower 99.8, upper 99.8); benchmark = pooled average of
# testdata_funnel_prop_inputs.csv: 10325813.8504 / 12804440 (sums of its 303 rows).
PROP_BENCH = 10325813.8504 / 12804440
PROP_FUNNEL = [
    (1, 3.204264, 100, 0, 100),
    (2, 25.885383, 100, 0, 100),
    (3, 35.933491, 100, 10.150815, 100),
    (10, 56.154344, 100, 42.03259, 100),
    (24, 64.835445, 96.449451, 55.719892, 100),
    (30, 66.504234, 94.780661, 58.351036, 100),
    (598, 77.475765, 83.809131, 75.649608, 85.635287),
    (1531, 78.663349, 82.621547, 77.522045, 83.76285),
    (99108, 80.396467, 80.888428, 80.254616, 81.03028),
    (110000, 80.408963, 80.875933, 80.274317, 81.010578),
]


def test_funnel_limits_proportions_match_phe():
    a = np.array(PROP_FUNNEL, dtype=float)
    f = S.funnel_limits(a[:, 0], PROP_BENCH * 100, statistic="proportion", multiplier=100)
    assert list(f.columns) == ["denominator", "benchmark", "lower_95", "upper_95",
                               "lower_99_8", "upper_99_8"]
    # the CSV holds 8 significant figures
    for col, j in (("lower_95", 1), ("upper_95", 2), ("lower_99_8", 3), ("upper_99_8", 4)):
        np.testing.assert_allclose(f[col], a[:, j], rtol=2e-7, atol=1e-6)


# PHEindicatormethods tests/testthat/testdata_funnel_rate_outputs.csv (dsr per 100,000,
# years_of_data = 3): (events, lower_2s_population_1_year, lower_2s_limit,
# upper_2s_population_1_year, upper_2s_limit, lower_3s_population_1_year, lower_3s_limit,
# upper_3s_population_1_year, upper_3s_limit); baseline 116.1720835.
RATE_BENCH = 116.1720835
RATE_FUNNEL = [
    (1, 1598.675694, 20.85059119, 7.264481402, 4588.535848, 2649.348525, 12.58170943,
     0.287087625, 116108.569),
    (2, 2072.984403, 32.15975314, 69.49732367, 959.2695538, 3221.906682, 20.69168143,
     13.02722321, 5117.48863),
    (5, 3348.002593, 49.78092521, 465.8280129, 357.7858395, 4721.370883, 35.30048174,
     212.14848, 785.6132963),
    (10, 5276.757672, 63.17010446, 1375.943768, 242.2579623, 6924.776769, 48.13632908,
     849.4639547, 392.4043292),
    (20, 8862.823734, 75.22057153, 3505.293872, 190.1885237, 10915.38389, 61.07587907,
     2570.385518, 259.3644657),
    (55, 20541.38426, 89.25071993, 11888.54874, 154.2100196, 23527.63198, 77.92256078,
     10012.3603, 183.1070076),
    (159, 53290.17651, 99.45547842, 38806.26443, 136.5758874, 57946.64861, 91.46344314,
     35253.30678, 150.3405066),
    (466, 146419.093, 106.088168, 121843.7136, 127.4857181, 153978.364, 100.8799738,
     115383.3934, 134.623648),
    (1360, 411529.9259, 110.158048, 369759.5622, 122.6021934, 424043.2424, 106.9073359,
     358342.3275, 126.5084525),
]


def test_funnel_limits_rates_match_phe():
    # PHE evaluates each limit curve at integer event counts E: the population at which E
    # events lie exactly on the limit.  Our limits at that population must equal E / pop.
    # PHE finds those points by bisection (stopping at a step of 1e-7 on a transformed
    # scale) and the CSV keeps 10 significant figures, which limits agreement for E = 1, 2
    # (tiny expected counts) to ~1e-5 (observed max 6.4e-6); for E >= 5 we require 1e-6.
    a = np.array(RATE_FUNNEL, dtype=float)
    for col, lab in ((1, "lower_95"), (3, "upper_95"), (5, "lower_99_8"), (7, "upper_99_8")):
        pop = a[:, col] * 3
        f = S.funnel_limits(pop, RATE_BENCH)
        close(f[lab][2:], a[2:, col + 1], REL)
        close(f[lab][:2], a[:2, col + 1], 1e-5)


def test_funnel_limits_rate_definition_round_trip():
    # The lower 95% limit count has an exact upper limit equal to the expected count, and
    # the upper limit count has an exact lower limit equal to it (continuous counts).
    n = np.array([50.0, 1e3, 1e5, 1e7])
    f = S.funnel_limits(n, 250.0, multiplier=100_000, confidence=(0.95,))
    mu = 250.0 / 1e5 * n
    xl, xu = f.lower_95 * n / 1e5, f.upper_95 * n / 1e5
    ok = xl > 0
    close(stats.gamma.ppf(0.975, xl[ok] + 1), mu[ok], 1e-9)
    close(stats.gamma.ppf(0.025, xu), mu, 1e-9)
    assert (f.lower_95[~ok] == 0).all()


# PHEindicatormethods tests/testthat/testdata_funnel_rate_dsr_inputs.csv: count, pop and
# the expected crude-rate significance (column crude_per_100000_with_0), all 40 rows.
RATE_SIG = [
    (2419, 264102, "High (0.001)"), (2337, 259711, "High (0.001)"),
    (2291, 289247, "High (0.001)"), (2242, 265029, "High (0.001)"),
    (2218, 284649, "High (0.001)"), (2159, 293578, "High (0.001)"),
    (2130, 286718, "High (0.001)"), (2111, 307381, "Not significant"),
    (2105, 274145, "High (0.001)"), (2083, 297424, "High (0.025)"),
    (2078, 272628, "High (0.001)"), (2062, 269656, "High (0.001)"),
    (2061, 294692, "High (0.025)"), (2033, 277710, "High (0.001)"),
    (2033, 259213, "High (0.001)"), (2010, 285516, "High (0.025)"),
    (2004, 269449, "High (0.001)"), (2002, 290888, "Not significant"),
    (1977, 287112, "Not significant"), (1944, 286492, "Not significant"),
    (1932, 287012, "Not significant"), (1922, 291277, "Not significant"),
    (1912, 289859, "Not significant"), (1881, 289653, "Not significant"),
    (1844, 282519, "Not significant"), (1835, 274220, "Not significant"),
    (1833, 280271, "Not significant"), (1825, 284206, "Not significant"),
    (1816, 274508, "Not significant"), (1809, 288384, "Low (0.025)"),
    (1798, 287072, "Low (0.025)"), (1754, 282744, "Low (0.001)"),
    (1746, 289208, "Low (0.001)"), (1709, 287736, "Low (0.001)"),
    (1694, 296175, "Low (0.001)"), (1688, 303255, "Low (0.001)"),
    (1649, 285959, "Low (0.001)"), (1553, 274661, "Low (0.001)"),
    (1332, 281425, "Low (0.001)"), (0, 297820, "Low (0.001)"),
]


def test_funnel_significance_rates_match_phe():
    x = np.array([r[0] for r in RATE_SIG], float)
    n = np.array([r[1] for r in RATE_SIG], float)
    expected = [r[2] for r in RATE_SIG]
    assert list(S.funnel_significance(x, n, statistic="rate")) == expected
    # multiplier does not change the classification (crude_per_100_with_0 is identical)
    assert list(S.funnel_significance(x, n, statistic="rate", multiplier=100)) == expected


# Same file, DSRs per 100,000 (rows with count > 0): (count, rate_dsr, expected significance
# in column dsr_per_100000_without_0).  PHE derives each denominator as count / dsr x 1e5.
DSR_SIG = [
    (2419, 907.6174266, "High (0.001)"), (2337, 948.5620216, "High (0.001)"),
    (2291, 799.9690496, "High (0.001)"), (2242, 852.5637927, "High (0.001)"),
    (2218, 868.5358183, "High (0.001)"), (2159, 769.6242217, "High (0.001)"),
    (2130, 752.3254955, "High (0.025)"), (2111, 710.2689402, "Not significant"),
    (2105, 815.3530325, "High (0.001)"), (2083, 717.7035916, "Not significant"),
    (2078, 755.8016993, "High (0.001)"), (2062, 825.9742848, "High (0.001)"),
    (2061, 702.2972468, "Not significant"), (2033, 785.6210132, "High (0.001)"),
    (2033, 743.6763018, "High (0.025)"), (2010, 781.8323058, "High (0.001)"),
    (2004, 772.6781064, "High (0.001)"), (2002, 652.3391553, "Low (0.001)"),
    (1977, 648.4969973, "Low (0.001)"), (1944, 727.5777428, "Not significant"),
    (1932, 625.6551186, "Low (0.001)"), (1922, 688.5582424, "Not significant"),
    (1912, 662.4465438, "Low (0.025)"), (1881, 627.1624732, "Low (0.001)"),
    (1844, 657.1114147, "Low (0.025)"), (1835, 724.8456714, "Not significant"),
    (1833, 659.7820553, "Low (0.025)"), (1825, 654.7053631, "Low (0.001)"),
    (1816, 624.4435507, "Low (0.001)"), (1809, 646.7588823, "Low (0.001)"),
    (1798, 703.1689982, "Not significant"), (1754, 567.9922764, "Low (0.001)"),
    (1746, 617.7750715, "Low (0.001)"), (1709, 610.8327232, "Low (0.001)"),
    (1694, 608.5089462, "Low (0.001)"), (1688, 662.3775859, "Low (0.025)"),
    (1649, 667.6454503, "Low (0.025)"), (1553, 604.1141693, "Low (0.001)"),
    (1332, 469.5645784, "Low (0.001)"),
]


def test_funnel_significance_dsrs_with_derived_denominators_match_phe():
    x = np.array([r[0] for r in DSR_SIG], float)
    dsr_values = np.array([r[1] for r in DSR_SIG])
    got = S.funnel_significance(x, x / dsr_values * 1e5, statistic="rate")
    assert list(got) == [r[2] for r in DSR_SIG]


# PHEindicatormethods tests/testthat/testdata_funnel_prop_inputs.csv (rows selected to
# cover every label): (area, numerator, denominator, significance)
PROP_SIG = [
    ("New Forest PCT", 35078.488, 41980, "High (0.001)"),
    ("Norwich PCT", 24803.6256, 31824, "Low (0.001)"),
    ("South Gloucestershire PCT", 50050.7443, 61921, "Not significant"),
    ("Havering PCT", 48686.4364, 59804, "High (0.001)"),
    ("Kingston PCT", 35795.6324, 45449, "Low (0.001)"),
    ("Daventry and South Northamptonshire PCT", 22506.3828, 25932, "High (0.001)"),
    ("Epping Forest PCT", 21121.016, 27530, "Low (0.001)"),
]


def test_funnel_significance_proportions_match_phe():
    x = np.array([r[1] for r in PROP_SIG])
    n = np.array([r[2] for r in PROP_SIG], float)
    got = S.funnel_significance(x, n, benchmark=PROP_BENCH, statistic="proportion")
    assert list(got) == [r[3] for r in PROP_SIG]


def test_funnel_significance_proportion_bands_hand_worked():
    # Benchmark 0.5, n = 400: 95% band 0.5 +/- 1.959964*0.025 = [0.45100, 0.54900];
    # 99.8% band 0.5 +/- 3.090232*0.025 = [0.42274, 0.57726].
    x = np.array([200, 221, 232, 175, 168])
    got = S.funnel_significance(x, 400, benchmark=0.5, statistic="proportion")
    assert list(got) == ["Not significant", "High (0.025)", "High (0.001)", "Low (0.025)",
                         "Low (0.001)"]


def test_funnel_significance_rate_scalar():
    assert S.funnel_significance(5, 1000, benchmark=500, statistic="rate") == "Not significant"
    assert S.funnel_significance(50, 1000, benchmark=500, statistic="rate") == "High (0.001)"


# ---------------------------------------------------------------------------
# Benchmark comparison
# ---------------------------------------------------------------------------

def test_compare_to_benchmark_polarities():
    lo = np.array([1.0, 5.0, 0.5, np.nan, 3.0])
    hi = np.array([2.0, 6.0, 3.0, 4.0, 4.0])
    b = 3.0
    assert list(S.compare_to_benchmark(lo, hi, b, "lower_is_better")) == [
        "Better", "Worse", "Similar", "Not compared", "Similar"]  # touching counts as similar
    assert list(S.compare_to_benchmark(lo, hi, b, "higher_is_better")) == [
        "Worse", "Better", "Similar", "Not compared", "Similar"]
    assert list(S.compare_to_benchmark(lo, hi, b, "none")) == [
        "Lower", "Higher", "Similar", "Not compared", "Similar"]
    assert S.compare_to_benchmark(1, 2, 3, "none") == "Lower"
    assert S.compare_to_benchmark(1, 2, np.nan) == "Not compared"
    with pytest.raises(ValueError):
        S.compare_to_benchmark(1, 2, 3, "up")


def test_compare_to_benchmark_with_rate_results_and_array_benchmark():
    r = S.rate_ci([20, 200, 60], [10_000, 10_000, 10_000], confidence=0.998)
    got = S.compare_to_benchmark(r.lower, r.upper, np.array([600.0, 600.0, 600.0]),
                                 "lower_is_better")
    assert list(got) == ["Better", "Worse", "Similar"]


# ---------------------------------------------------------------------------
# Fingertips recent trend
# ---------------------------------------------------------------------------

# Fingertips (fingertips-open) TrendMarkerCalculatorTest.cs, GetTrendData_Set1, ordered
# 2014..2018: counts, denominators, values and 95% limits; expected chi-square 46.77
# (weighted regression on values) and 47.90 (SPC for proportions), both significant.
T_COUNT = [994, 1023, 1199, 1332, 1367]
T_DENOM = [40299, 41527, 42811, 44064, 44701]
T_VAL = [24.67, 24.6, 28, 30.2, 30.6]
T_LO = [23.16, 23.15, 26.44, 28.63, 28.98]
T_HI = [26.25, 26.19, 29.64, 31.9, 32.25]


def test_trend_proportions_matches_fingertips():
    r = S.trend_test(T_COUNT, T_DENOM)
    assert round(r.statistic, 2) == 47.90
    assert r.direction == "Increasing" and r.n_points == 5
    assert r.p_value == pytest.approx(stats.chi2.sf(r.statistic, 1))


def test_trend_values_with_cis_matches_fingertips():
    r = S.trend_test(T_COUNT, T_DENOM, statistic="rate", values=T_VAL, lower=T_LO, upper=T_HI)
    assert round(r.statistic, 2) == 46.77
    assert r.direction == "Increasing"


def test_trend_not_significant_matches_fingertips_set2():
    # TrendMarkerCalculatorTest.cs GetTrendData_Set2 (2014..2018): not significant
    r = S.trend_test([209, 213, 213, 239, 210], [1017, 1087, 1119, 1117, 1139],
                     statistic="rate", values=[20.5506, 19.5952, 19.0349, 21.3966, 18.4372],
                     lower=[18.1803, 17.3444, 16.8421, 19.0918, 16.2925],
                     upper=[23.1427, 22.0602, 21.4394, 23.8975, 20.7941])
    assert r.direction == "No significant change"


def test_trend_cannot_be_calculated_cases():
    # GetTrendDataForProportion_Set2: a count equals its denominator -> cannot be calculated
    r = S.trend_test([5, 3, 1, 1, 2], [5, 5, 5, 4, 4])
    assert r.direction == "Cannot be calculated"
    assert S.trend_test([10, 20, 30, 40], [100] * 4).direction == "Cannot be calculated"
    # a missing point breaks the run of the most recent five
    r = S.trend_test([10, 20, np.nan, 30, 40, 50, 60], [100] * 7)
    assert r.direction == "Cannot be calculated"


def test_cochran_armitage_statistic_independent_formula():
    # Armitage's test written as slope^2 / var(slope) (Altman, Practical Statistics for
    # Medical Research, 10.7.4), a different algebraic form from the module's.
    r = np.array([30, 45, 50, 70, 80.0])
    n = np.array([1000, 1100, 1050, 1200, 1150.0])
    t = np.arange(1, 6.0)
    N, p = n.sum(), r.sum() / n.sum()
    tbar = (n * t).sum() / N
    b = (r * (t - tbar)).sum() / (n * (t - tbar) ** 2).sum()
    var_b = p * (1 - p) / (n * (t - tbar) ** 2).sum()
    got = S.trend_test(r, n)
    assert got.statistic == pytest.approx(b**2 / var_b, rel=1e-10)
    assert got.direction == "Increasing"
    down = S.trend_test(r[::-1], n[::-1])
    assert down.direction == "Decreasing"


def test_trend_outlier_rule():
    # Strong overall rise driven by one point: leaving it out reverses the slope.
    r = S.trend_test([100, 99, 98, 97, 400], [10_000] * 5)
    assert r.statistic > 9.5495
    assert r.direction == "No significant change" and r.reason == "outlier found"


def test_trend_uses_most_recent_points_and_confidence():
    # an early high point outside the last five does not matter
    x = [5000, 1000, 1000, 1100, 1200, 1300, 1400]
    r = S.trend_test(x, [10_000] * 7)
    assert r.direction == "Increasing"
    r95 = S.trend_test([100, 108, 116, 124, 132], [10_000] * 5, confidence=0.95)
    r998 = S.trend_test([100, 108, 116, 124, 132], [10_000] * 5)
    assert r95.statistic == r998.statistic
    assert r95.direction == "Increasing" and r998.direction == "No significant change"


def test_trend_rate_default_uses_rate_ci():
    r = S.trend_test([100, 130, 160, 190, 220], [100_000] * 5, statistic="rate")
    assert r.direction == "Increasing"
    rc = S.rate_ci(np.array([100, 130, 160, 190, 220.0]), 100_000.0, 0.95, 1)
    se = (rc.upper - rc.lower) / 3.92
    w = 1 / se**2
    t = np.arange(1, 6.0)
    X = np.column_stack([np.ones(5), t])
    cov = np.linalg.inv(X.T @ (X * w[:, None]))
    beta = cov @ (X.T @ (w * rc.value))
    assert r.statistic == pytest.approx(beta[1] ** 2 / cov[1, 1], rel=1e-9)


# ---------------------------------------------------------------------------
# Confidence levels and vectorisation
# ---------------------------------------------------------------------------

@pytest.mark.parametrize("conf", [0.8, 0.9, 0.95, 0.99, 0.998, 0.9999])
def test_any_confidence_level_nests(conf):
    r = S.rate_ci([0, 3, 15, 400], [1000] * 4, confidence=conf)
    wider = S.rate_ci([0, 3, 15, 400], [1000] * 4, confidence=min(conf + 0.0009, 0.99995))
    assert np.all(wider.lower <= r.lower) and np.all(wider.upper >= r.upper)
    p = S.proportion_ci([0, 3, 15, 400], 1000, confidence=conf)
    assert np.all(p.lower <= p.value) and np.all(p.upper >= p.value)


def test_invalid_confidence_rejected():
    for bad in (0, 1, 95, -0.5):
        with pytest.raises(ValueError):
            S.proportion_ci(1, 10, confidence=bad)


@settings(max_examples=25, deadline=None)
@given(
    counts=st.lists(st.integers(0, 5000), min_size=1, max_size=12),
    conf=st.sampled_from([0.95, 0.998]),
)
def test_vectorised_equals_scalar_loop(counts, conf):
    x = np.array(counts, float)
    n = x * 3 + 17
    v = S.rate_ci(x, n, conf)
    p = S.proportion_ci(x, n, conf, 100)
    for i in range(len(x)):
        s = S.rate_ci(float(x[i]), float(n[i]), conf)
        assert (s.value, s.lower, s.upper) == (v.value[i], v.lower[i], v.upper[i])
        q = S.proportion_ci(int(x[i]), int(n[i]), conf, 100)
        assert (q.value, q.lower, q.upper) == (p.value[i], p.lower[i], p.upper[i])


def test_pandas_series_input():
    x = pd.Series([10, 20, 30])
    n = pd.Series([1000, 1000, 1000])
    r = S.rate_ci(x, n)
    assert isinstance(r.value, np.ndarray) and r.value.shape == (3,)
    frame = pd.DataFrame(r._asdict())
    assert list(frame.columns) == ["value", "lower", "upper"]


@settings(max_examples=20, deadline=None)
@given(
    rows=st.lists(st.lists(st.integers(0, 300), min_size=19, max_size=19), min_size=1,
                  max_size=5),
    conf=st.sampled_from([0.95, 0.998]),
)
def test_dsr_rows_equal_scalar_loop(rows, conf):
    x = np.array(rows, float)
    m = S.dsr(x, POP, confidence=conf)
    for i, row in enumerate(rows):
        s = S.dsr(row, POP, confidence=conf)
        for got, one in zip((m.value[i], m.lower[i], m.upper[i]), (s.value, s.lower, s.upper)):
            assert (np.isnan(got) and np.isnan(one)) or got == one
        assert m.reason[i] == s.reason


def test_funnel_and_comparison_vectorised_equal_scalar_loop():
    x = np.array([0, 3, 12, 40, 95, 160])
    n = np.array([900, 1000, 1500, 4000, 9000, 9000])
    v = S.funnel_significance(x, n, benchmark=1000, statistic="rate")
    assert list(v) == [S.funnel_significance(a, b, benchmark=1000, statistic="rate")
                       for a, b in zip(x, n)]
    r = S.rate_ci(x, n, 0.998)
    c = S.compare_to_benchmark(r.lower, r.upper, 1000, "lower_is_better")
    assert list(c) == [S.compare_to_benchmark(lo, hi, 1000, "lower_is_better")
                       for lo, hi in zip(r.lower, r.upper)]
    f = S.funnel_limits(n, 1000)
    for i, ni in enumerate(n):
        one = S.funnel_limits(ni, 1000)
        assert one.iloc[0].tolist() == f.iloc[i].tolist()
