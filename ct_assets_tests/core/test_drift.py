"""Drift report: statistics agree with alibi-detect, and each scenario gets the right verdict.

The frames are synthetic stand-ins for the ``features`` table, built with a seeded numpy
generator: stable days, a regional promotion (south's discount), a sensor hardware change (every
sensor rescaled), new query terms in one category, and a joint shift invisible per feature.
"""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from ct_assets.core.data import schema
from ct_assets.core.monitoring.drift.plot import write_drift_plot
from ct_assets.core.monitoring.drift.report import build_drift_report
from ct_assets.core.monitoring.drift.stats import (
    Grouping,
    adjust_p_values,
    chi_squared_two_sample,
    ks_p_values,
    numeric_drift_by_groups,
    population_stability_index,
)
from ct_assets.core.monitoring.drift.types import DriftConfig

TERMS = np.array(list(schema.QUERY_TERMS))
REFERENCE_ROWS = 20_000
CURRENT_ROWS = 5_000


def make_features(seed: int, n_rows: int) -> pd.DataFrame:
    """A features-table-like frame; every day drawn from the same distribution."""
    rng = np.random.default_rng(seed)
    terms = rng.choice(TERMS, size=n_rows)
    return pd.DataFrame({
        schema.ID_COLUMN: [f"e{seed}-{i}" for i in range(n_rows)],
        "region": rng.choice(schema.REGIONS, size=n_rows, p=[0.25, 0.2, 0.2, 0.2, 0.15]),
        "channel": rng.choice(schema.CHANNELS, size=n_rows, p=[0.5, 0.3, 0.2]),
        "query_term": terms,
        "category": [schema.QUERY_TERMS[term] for term in terms],
        schema.GROUP_COLUMN: rng.choice(schema.PROTECTED_GROUPS, size=n_rows, p=[0.6, 0.4]),
        "log_price": rng.normal(4.0, 1.0, n_rows),
        "discount": rng.beta(2.0, 10.0, n_rows) * 0.95,
        "quantity": 1 + rng.poisson(0.5, n_rows),
        "log_account_age": np.abs(rng.normal(6.0, 1.5, n_rows)),
        "prior_chargebacks": rng.poisson(0.05, n_rows),
        "sensor_motion": rng.normal(0.0, 1.0, n_rows),
        "sensor_pressure": rng.normal(5.0, 2.0, n_rows),
        "sensor_latency_ms": rng.lognormal(4.0, 0.5, n_rows),
        "sensor_signal": rng.normal(-60.0, 10.0, n_rows),
        "hour_of_day": rng.integers(0, 24, n_rows),
        "is_weekend": np.full(n_rows, seed % 7 >= 5, dtype=np.int64),
        "price_vs_region_7d": rng.normal(1.0, 0.2, n_rows),
    })


def regional_promotion(frame: pd.DataFrame, region: str = "south") -> pd.DataFrame:
    promoted = frame.copy()
    rows = promoted["region"] == region
    promoted.loc[rows, "discount"] = np.clip(promoted.loc[rows, "discount"] + 0.25, 0.0, 0.95)
    return promoted


def sensor_hardware_change(frame: pd.DataFrame) -> pd.DataFrame:
    changed = frame.copy()
    for column in schema.SENSOR_COLUMNS:
        changed[column] = changed[column] * 1.6 + 0.5 * changed[column].std()
    return changed


def new_terms(frame: pd.DataFrame, category: str = "fashion", share: float = 0.3, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    slang = frame.copy()
    rows = np.flatnonzero((slang["category"] == category).to_numpy() & (rng.random(len(slang)) < share))
    slang.loc[slang.index[rows], "query_term"] = rng.choice(["drip_fit", "y2k_boots", "cottagecore"], size=len(rows))
    return slang


def model_scores(frame: pd.DataFrame) -> np.ndarray:
    """A fixed 'production model': a logistic score over a few features."""
    logit = -2.0 + 3.0 * frame["discount"] + 0.4 * frame["sensor_motion"] - 0.02 * (frame["sensor_signal"] + 60.0)
    return 1.0 / (1.0 + np.exp(-logit.to_numpy()))


@pytest.fixture(scope="module")
def reference() -> pd.DataFrame:
    return make_features(1000, REFERENCE_ROWS)


@pytest.fixture(scope="module")
def current() -> pd.DataFrame:
    return make_features(1, CURRENT_ROWS)


# ----------------------------------------------------------------------------- statistics


def test_ks_and_chi_squared_p_values_match_alibi_detect() -> None:
    from alibi_detect.cd import ChiSquareDrift, KSDrift

    rng = np.random.default_rng(3)
    x_ref = np.column_stack([rng.normal(0, 1, 600), rng.normal(0, 1, 600), rng.integers(0, 5, 600)]).astype(np.float32)
    x_cur = np.column_stack([rng.normal(0.2, 1, 500), rng.normal(0, 1.1, 500), rng.integers(0, 5, 500)]).astype(
        np.float32
    )
    alibi_ks = KSDrift(x_ref, p_val=0.05).predict(x_cur, drift_type="feature")["data"]
    single = [Grouping(np.zeros(600, np.int64), np.zeros(500, np.int64), 1)]
    for column in range(3):
        stats = numeric_drift_by_groups(x_ref[:, column], x_cur[:, column], single, 10)[0]
        ours = ks_p_values(stats.ks_statistic, stats.n_reference, stats.n_current)
        assert stats.ks_statistic[0] == pytest.approx(alibi_ks["distance"][column], rel=1e-5)
        assert ours[0] == pytest.approx(alibi_ks["p_val"][column], rel=1e-5)

    # Categorical: a 5-level feature, a new level in the current batch, and a binary one (Yates).
    c_ref = np.column_stack([rng.integers(0, 5, 800), rng.integers(0, 2, 800)])
    c_cur = np.column_stack([rng.choice(6, 700, p=[0.2, 0.2, 0.2, 0.15, 0.15, 0.1]), rng.binomial(1, 0.56, 700)])
    alibi_chi2 = ChiSquareDrift(c_ref, p_val=0.05).predict(c_cur, drift_type="feature")["data"]
    for column in range(2):
        counts_ref = np.bincount(c_ref[:, column], minlength=6)[None, :]
        counts_cur = np.bincount(c_cur[:, column], minlength=6)[None, :]
        statistic, p_value = chi_squared_two_sample(counts_ref, counts_cur)
        assert statistic[0] == pytest.approx(alibi_chi2["distance"][column], rel=1e-5)
        assert p_value[0] == pytest.approx(alibi_chi2["p_val"][column], rel=1e-4)


def test_ks_p_values_stay_close_to_scipy_where_its_exact_path_is_slow() -> None:
    from scipy.stats import kstwo

    for n in (500, 5_000, 50_000):
        statistic = 0.9 * (1.4 / n) ** (2 / 3)  # inside scipy's Durbin-matrix region
        ours = ks_p_values(np.array([statistic]), np.array([2 * n]), np.array([2 * n]))[0]
        assert ours > 0.9
        assert ours == pytest.approx(kstwo.sf(statistic, n), rel=0.02)


def test_p_value_corrections() -> None:
    p_values = np.array([0.01, 0.02, 0.03, 0.5, np.nan])
    assert adjust_p_values(p_values, "bonferroni")[:4].tolist() == pytest.approx([0.04, 0.08, 0.12, 1.0])
    assert adjust_p_values(p_values, "fdr")[:4].tolist() == pytest.approx([0.04, 0.04, 0.04, 0.5])
    assert np.isnan(adjust_p_values(p_values, "fdr")[4])
    with pytest.raises(ValueError, match="correction"):
        adjust_p_values(p_values, "holm")


def test_population_stability_index_grows_with_the_shift() -> None:
    rng = np.random.default_rng(0)
    reference = np.sort(rng.normal(0, 1, 20_000))
    same = population_stability_index(reference, np.sort(rng.normal(0, 1, 5_000)), 10)
    small = population_stability_index(reference, np.sort(rng.normal(0.2, 1, 5_000)), 10)
    large = population_stability_index(reference, np.sort(rng.normal(1.0, 1, 5_000)), 10)
    assert same < 0.02 < small < 0.1 < 0.25 < large


# ----------------------------------------------------------------------------- scenarios


def test_thirty_stable_days_raise_at_most_one_alarm(reference: pd.DataFrame) -> None:
    # Default thresholds; only the MMD cost knobs are smaller to keep 30 reports fast (MMD's
    # severity weight alone stays below medium, so this cannot hide an alarm).
    config = DriftConfig(mmd_sample_size=200, mmd_permutations=50)
    reports = [build_drift_report(reference, make_features(day, CURRENT_ROWS), config) for day in range(30)]
    flagged = [r for r in reports if r.scope != "none"]
    medium_or_worse = [r for r in reports if r.severity_level in ("medium", "high")]
    assert len(flagged) <= 1, [(r.scope, r.drifted_features) for r in flagged]
    assert len(medium_or_worse) <= 1
    # is_weekend is constant within a day: excluded by default, never reported.
    assert all("is_weekend" not in r.drifted_features for r in reports)


def test_regional_promotion_is_local_to_south(reference: pd.DataFrame, current: pd.DataFrame) -> None:
    report = build_drift_report(reference, regional_promotion(current))
    assert report.scope == "local"
    assert report.scope_dimension == "region"
    assert report.affected_segments == ("region=south",)
    assert report.affected_traffic_share == pytest.approx((current["region"] == "south").mean())
    assert report.top_features[0] == "discount"
    south = next(s for s in report.segments if s.name == "region=south")
    assert south.drifted_features == ("discount",)
    assert all(not s.drifted for s in report.segments if s.column == "region" and s.value != "south")
    assert report.severity_level in ("low", "medium")


def test_sensor_hardware_change_is_global_on_the_sensor_features(
    reference: pd.DataFrame, current: pd.DataFrame
) -> None:
    report = build_drift_report(reference, sensor_hardware_change(current))
    assert report.scope == "global"
    assert set(report.drifted_features) == set(schema.SENSOR_COLUMNS)
    assert all(s.drifted for s in report.segments if not s.skipped)
    assert report.affected_traffic_share == pytest.approx(1.0)
    assert report.multivariate is not None and report.multivariate.drifted
    assert report.severity_level == "high"


def test_new_query_terms_are_unseen_and_local_to_their_category(
    reference: pd.DataFrame, current: pd.DataFrame
) -> None:
    slang = new_terms(current)
    report = build_drift_report(reference, slang)
    fashion_share = (slang["category"] == "fashion").mean()
    assert report.unseen_share["query_term"] == pytest.approx(0.3 * fashion_share, abs=0.02)
    assert report.unseen_share["region"] == 0.0
    fashion = next(s for s in report.segments if s.name == "category=fashion")
    assert fashion.unseen_share["query_term"] == pytest.approx(0.3, abs=0.05)
    assert "query_term" in fashion.drifted_features
    assert report.scope == "local"
    assert report.affected_segments == ("category=fashion",)
    assert "unseen_categories" in report.flags


def test_two_local_shifts_at_once_stay_local(reference: pd.DataFrame, current: pd.DataFrame) -> None:
    both = new_terms(regional_promotion(current))
    report = build_drift_report(reference, both, DriftConfig(multivariate=False))
    assert report.scope == "local"
    assert set(report.affected_segments) == {"region=south", "category=fashion"}
    where = {loc.feature: (loc.scope, loc.segments) for loc in report.feature_localisation}
    assert where == {"discount": ("local", ("region=south",)), "query_term": ("local", ("category=fashion",))}
    in_either = (both["region"] == "south") | (both["category"] == "fashion")
    assert report.affected_traffic_share == pytest.approx(in_either.mean())
    assert report.to_summary()["localisation.discount"] == "local:region=south"


def test_shift_confined_to_one_group_is_named_by_that_group(reference: pd.DataFrame, current: pd.DataFrame) -> None:
    # Younger accounts in group_b only: every region and category holds some group_b rows, so the
    # shift leaks into them diluted; the sharpest contrast still names the group.
    shifted = current.copy()
    rows = shifted[schema.GROUP_COLUMN] == "group_b"
    shifted.loc[rows, "log_account_age"] -= 1.5
    report = build_drift_report(reference, shifted, DriftConfig(multivariate=False))
    assert report.scope == "local"
    assert report.scope_dimension == schema.GROUP_COLUMN
    assert report.affected_segments == ("protected_group=group_b",)


def test_joint_shift_invisible_per_feature_is_caught_by_bounded_mmd(reference: pd.DataFrame) -> None:
    def correlate(frame: pd.DataFrame, rho: float, seed: int) -> pd.DataFrame:
        rng = np.random.default_rng(seed)
        z1, z2 = rng.normal(size=len(frame)), rng.normal(size=len(frame))
        out = frame.copy()
        out["sensor_motion"] = z1
        out["sensor_pressure"] = 5.0 + 2.0 * (rho * z1 + np.sqrt(1 - rho**2) * z2)
        return out

    config = DriftConfig(mmd_sample_size=400)
    base = correlate(reference, 0.9, seed=5)
    flipped = correlate(make_features(2, 20_000), -0.9, seed=6)
    report = build_drift_report(base, flipped, config)
    assert report.drifted_features == ()  # marginals are unchanged
    assert report.multivariate is not None and report.multivariate.drifted
    assert report.multivariate.n_current_sample == 400  # bounded whatever the batch size
    assert "multivariate_drift" in report.flags
    assert report.severity_level in ("none", "low")  # MMD alone cannot raise a medium alarm
    again = build_drift_report(base, flipped, config)
    assert again.multivariate.p_value == report.multivariate.p_value
    assert again.multivariate.statistic == report.multivariate.statistic


def test_prediction_and_uncertainty_drift_of_the_production_model(
    reference: pd.DataFrame, current: pd.DataFrame
) -> None:
    config = DriftConfig(multivariate=False)
    stable = build_drift_report(reference, current, config, model_scores(reference), model_scores(current))
    assert stable.prediction_drift is not None and not stable.prediction_drift.drifted

    changed = sensor_hardware_change(current)
    shifted = build_drift_report(reference, changed, config, model_scores(reference), model_scores(changed))
    assert shifted.prediction_drift.prediction.drifted
    assert "prediction_drift" in shifted.flags

    # Scores squeezed towards 0.5: the model got unsure without its mean moving much.
    unsure_scores = 0.5 + (model_scores(current) - 0.5) * 0.2
    unsure = build_drift_report(reference, current, config, model_scores(reference), unsure_scores)
    assert unsure.prediction_drift.uncertainty.drifted
    assert unsure.prediction_drift.uncertainty.effect_size > unsure.config.prediction_psi_threshold


def test_small_segments_are_skipped_and_recorded(reference: pd.DataFrame) -> None:
    current = make_features(3, CURRENT_ROWS)
    current = current[(current["region"] != "central") | (np.arange(len(current)) % 10 == 0)]
    report = build_drift_report(reference, current, DriftConfig(multivariate=False))
    central = next(s for s in report.segments if s.name == "region=central")
    assert central.skipped and central.results == () and "fewer than 200 rows" in central.skip_reason
    assert "region=central" in report.skipped_segments
    assert "segments_skipped" in report.flags
    assert all(r.segment_value != "central" for r in report.all_results())


def test_summary_is_flat_json(reference: pd.DataFrame, current: pd.DataFrame) -> None:
    report = build_drift_report(reference, regional_promotion(current), DriftConfig(multivariate=False),
                                model_scores(reference), model_scores(regional_promotion(current)))
    summary = report.to_summary()
    json.dumps(summary, allow_nan=False)
    assert all(isinstance(v, (str, int, float, bool)) or
               (isinstance(v, list) and all(isinstance(x, str) for x in v)) for v in summary.values())
    assert summary["scope"] == "local" and summary["affected_segments"] == ["region=south"]
    assert summary["effect.discount"] > 0.0 and "prediction_psi" in summary


def test_bad_inputs_are_rejected_with_a_clear_message(reference: pd.DataFrame, current: pd.DataFrame) -> None:
    with pytest.raises(ValueError, match="sensor_motion"):
        build_drift_report(reference, current.drop(columns=["sensor_motion"]))
    with pytest.raises(ValueError, match="empty"):
        build_drift_report(reference, current.iloc[:0])
    with pytest.raises(ValueError, match="scores"):
        build_drift_report(reference, current, DriftConfig(multivariate=False), np.full(3, 0.5), np.full(3, 0.5))
    with pytest.raises(ValueError, match="both"):
        build_drift_report(reference, current, DriftConfig(multivariate=False), model_scores(reference))
    with pytest.raises(ValueError, match="correction"):
        DriftConfig(correction="holm")
    with pytest.raises(ValueError, match="severity"):
        DriftConfig(severity_medium=0.9)


def test_plot_shows_top_features_and_segment_heatmap(reference: pd.DataFrame, current: pd.DataFrame, tmp_path) -> None:
    promoted = regional_promotion(current)
    report = build_drift_report(reference, new_terms(promoted), DriftConfig(multivariate=False))
    path = write_drift_plot(reference, new_terms(promoted), report, tmp_path / "reports" / "2024-03-01.png")
    assert path.exists() and path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert path.stat().st_size > 20_000
    assert list(path.parent.iterdir()) == [path]  # the temporary file was renamed away
