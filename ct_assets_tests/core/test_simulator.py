"""Simulator: determinism, schema validity under every scenario, each scenario's effect, landing files."""

from __future__ import annotations

import os
from datetime import date
from pathlib import Path

import duckdb
import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import accuracy_score, log_loss, roc_auc_score

from ct_assets.core.data import schema
from ct_assets.simulation.config import SimulatorConfig
from ct_assets.simulation.generation import (
    DayBatch,
    base_regime_probability,
    generate_day,
    true_fraud_probability,
)
from ct_assets.simulation.landing import next_day_index, write_day, write_history
from ct_assets.simulation.regimes import regime_for_day
from ct_assets.simulation.scenarios import SCENARIOS, ScenarioEvent, format_timeline, parse_timeline

ROWS = 4000


def config(spec: str = "stable", rows: int = ROWS, **kwargs: object) -> SimulatorConfig:
    return SimulatorConfig(rows_per_day=rows, timeline=parse_timeline(spec), **kwargs)  # type: ignore[arg-type]


def pair(spec: str, day: int = 1, rows: int = ROWS) -> tuple[SimulatorConfig, DayBatch, DayBatch]:
    """The scenario's batch and the stable batch of the same seed and day."""
    scenario_config = config(spec, rows)
    return scenario_config, generate_day(scenario_config, day), generate_day(config("stable", rows), day)


def assert_valid_events(events: pd.DataFrame, cfg: SimulatorConfig, day_index: int) -> None:
    assert tuple(events.columns) == schema.EVENT_COLUMNS
    assert not events.isna().any().any()
    assert events[schema.ID_COLUMN].dtype == np.int64
    assert str(events[schema.TIME_COLUMN].dtype).startswith("datetime64")
    for column in schema.NUMERIC_COLUMNS:
        values = events[column.name]
        assert values.dtype == (np.int64 if column.dtype == "int" else np.float64), column.name
        assert values.min() >= column.min_value and values.max() <= column.max_value, column.name
    ids = events[schema.ID_COLUMN]
    assert ids.is_unique and ids.is_monotonic_increasing
    assert ids.min() >= day_index * 1_000_000 and ids.max() < (day_index + 1) * 1_000_000
    timestamps = events[schema.TIME_COLUMN]
    assert (timestamps.dt.normalize() == pd.Timestamp(cfg.day_date(day_index))).all()
    assert timestamps.is_monotonic_increasing
    assert set(events["region"]) <= set(schema.REGIONS)
    assert set(events["channel"]) <= set(schema.CHANNELS)
    assert set(events["category"]) <= set(schema.CATEGORIES)
    assert set(events[schema.GROUP_COLUMN]) <= set(schema.PROTECTED_GROUPS)
    terms = events["query_term"]
    assert terms.str.len().between(1, schema.MAX_TERM_LENGTH).all()
    known = terms.isin(list(schema.QUERY_TERMS))
    assert (terms[known].map(schema.QUERY_TERMS) == events.loc[known, "category"]).all()


# --- determinism and the base world ---------------------------------------------------------

def test_same_seed_gives_identical_days_and_another_seed_differs() -> None:
    first, again = generate_day(config(), 3), generate_day(config(), 3)
    pd.testing.assert_frame_equal(first.events, again.events)
    pd.testing.assert_frame_equal(first.labels, again.labels)
    pd.testing.assert_frame_equal(first.complaints, again.complaints)
    np.testing.assert_array_equal(first.served_scores, again.served_scores)
    other_seed = generate_day(config(seed=8), 3)
    assert not first.events["price"].equals(other_seed.events["price"])
    other_day = generate_day(config(), 4)
    assert not set(first.events[schema.ID_COLUMN]) & set(other_day.events[schema.ID_COLUMN])
    assert other_day.day == date(2025, 1, 5)


def test_base_world_has_a_realistic_fraud_rate_and_real_signal() -> None:
    cfg = config(rows=20_000)
    batch = generate_day(cfg, 0)
    events, y = batch.events, batch.is_fraud
    assert_valid_events(events, cfg, 0)
    assert 0.08 <= y.mean() <= 0.12
    np.testing.assert_allclose(true_fraud_probability(events, cfg, 0), batch.true_probability)
    assert roc_auc_score(y, batch.true_probability) > 0.85
    assert 0.67 <= (events[schema.GROUP_COLUMN] == "group_a").mean() <= 0.73
    night = (events[schema.TIME_COLUMN].dt.hour < 6).to_numpy()
    assert y[night].mean() > 2 * y[~night].mean()
    young = (events["account_age_days"] < 60).to_numpy()
    assert y[young].mean() > 2 * y[~young].mean()
    assert y[(events["prior_chargebacks"] > 0).to_numpy()].mean() > 2 * y.mean()
    assert y[(events["discount"] > 0.3).to_numpy()].mean() > y.mean()
    low_motion = (events["sensor_motion"] < 20).to_numpy()
    assert y[low_motion].mean() > 2 * y.mean()
    # protected_group is mildly correlated with features (younger accounts in group_b).
    by_group = events.groupby(schema.GROUP_COLUMN)["account_age_days"].median()
    assert by_group["group_b"] < by_group["group_a"]
    # The default served model on day 0 is the day-0 truth itself.
    np.testing.assert_allclose(batch.served_scores, batch.true_probability)


@pytest.mark.parametrize("name", sorted(SCENARIOS))
def test_every_scenario_generates_schema_valid_events(name: str) -> None:
    cfg = config(f"stable@0,{name}@1", rows=2000)
    for day_index in (0, 1):
        batch = generate_day(cfg, day_index)
        assert_valid_events(batch.events, cfg, day_index)
        assert set(batch.labels[schema.FRAUD_LABEL_COLUMN]) <= {0, 1}
        assert batch.labels[schema.ID_COLUMN].isin(batch.events[schema.ID_COLUMN]).all()


def test_all_scenarios_at_full_strength_together_stay_valid() -> None:
    spec = ("regional_promotion@0:discount_share=1:discount_mean=0.9,new_slang@0:share=1,"
            "sensor_hardware_change@0,sensor_hardware_change@0,market_shift@0,label_scarcity@0,"
            "complaints@0:slice_column=region:slice_value=south,group_shift@0,leakage_bug@0,feedback_loop@0")
    cfg = config(spec, rows=5000)
    batch = generate_day(cfg, 2)
    assert_valid_events(batch.events, cfg, 2)
    assert set(batch.scenarios) == set(SCENARIOS) - {"stable"}


# --- each scenario against stable (same seed, same draws) -----------------------------------

def test_regional_promotion_moves_discount_only_in_its_region() -> None:
    _, promo, stable = pair("regional_promotion@1")
    south = (promo.events["region"] == "south").to_numpy()
    pd.testing.assert_frame_equal(promo.events[~south], stable.events[~south])
    assert promo.events["discount"][south].mean() > 0.3 > 0.15 > stable.events["discount"][south].mean()
    # The fraud relation changes there: the stale model now blocks good promotion orders.
    def false_positive_rate(batch: DayBatch) -> float:
        good = south & (batch.is_fraud == 0)
        return float(batch.blocked[good].mean())
    assert false_positive_rate(promo) > 1.5 * false_positive_rate(stable)
    west = generate_day(config("regional_promotion@1:region=west"), 1).events
    assert west.loc[west["region"] == "west", "discount"].mean() > 0.3
    assert west.loc[west["region"] == "south", "discount"].mean() < 0.15


def test_new_slang_adds_unseen_terms_only_in_its_family_with_their_own_effect() -> None:
    cfg, slang, stable = pair("new_slang@1")
    unseen = ~slang.events["query_term"].isin(list(schema.QUERY_TERMS))
    fashion = slang.events["category"] == "fashion"
    assert unseen.any() and not (unseen & ~fashion).any()
    assert 0.2 < unseen[fashion].mean() < 0.4
    assert set(slang.events.loc[unseen, "query_term"]) <= set(SCENARIOS["new_slang"].defaults["terms"])
    pd.testing.assert_series_equal(slang.events["category"], stable.events["category"])
    pd.testing.assert_frame_equal(slang.events[~unseen.to_numpy()], stable.events[~unseen.to_numpy()])
    rows = unseen.to_numpy()
    assert slang.true_probability[rows].mean() > 1.5 * stable.true_probability[rows].mean()
    home = generate_day(config("new_slang@1:family=home:terms=cozy_core|dupe_lamp"), 1).events
    new_home = ~home["query_term"].isin(list(schema.QUERY_TERMS))
    assert set(home.loc[new_home, "query_term"]) == {"cozy_core", "dupe_lamp"}
    assert (home.loc[new_home, "category"] == "home").all()


def test_sensor_hardware_change_moves_every_sensor_in_every_region_but_not_the_labels() -> None:
    cfg, changed, stable = pair("sensor_hardware_change@1")
    for column in schema.SENSOR_COLUMNS:
        for segment in ("region", schema.GROUP_COLUMN):
            new_means = changed.events.groupby(segment)[column].mean()
            old_means = stable.events.groupby(segment)[column].mean()
            assert ((new_means - old_means).abs() > 0.2 * old_means.abs().clip(lower=10)).all(), (column, segment)
    others = [c for c in schema.EVENT_COLUMNS if c not in schema.SENSOR_COLUMNS]
    pd.testing.assert_frame_equal(changed.events[others], stable.events[others])
    np.testing.assert_array_equal(changed.is_fraud, stable.is_fraud)
    np.testing.assert_allclose(changed.true_probability, stable.true_probability, atol=1e-3)
    stale = base_regime_probability(changed.events, cfg)
    assert log_loss(changed.is_fraud, stale) > 1.5 * log_loss(stable.is_fraud, stable.served_scores)


def test_market_shift_changes_the_label_relation_not_the_features() -> None:
    cfg, shifted, stable = pair("market_shift@1")
    pd.testing.assert_frame_equal(shifted.events, stable.events)
    stale = base_regime_probability(shifted.events, cfg)
    assert roc_auc_score(shifted.is_fraud, stale) < roc_auc_score(stable.is_fraud, stable.served_scores) - 0.2
    assert log_loss(shifted.is_fraud, stale) > 1.5 * log_loss(stable.is_fraud, stable.served_scores)
    # The new truth is learnable: the regime's own oracle still ranks well.
    assert roc_auc_score(shifted.is_fraud, true_fraud_probability(shifted.events, cfg, 1)) > 0.7
    assert shifted.is_fraud.mean() > stable.is_fraud.mean()


def test_label_scarcity_lowers_coverage_and_delays_labels() -> None:
    _, scarce, stable = pair("label_scarcity@1")
    assert 0.75 < len(stable.labels) / ROWS < 0.85
    assert 0.03 < len(scarce.labels) / ROWS < 0.07
    assert set(stable.labels["arrival_day"]) == {2}
    assert set(scarce.labels["arrival_day"]) == {6}
    assert (scarce.labels["labelled_at"].dt.normalize() == pd.Timestamp("2025-01-07")).all()


def test_complaints_scenario_raises_served_error_and_complaints_with_scarce_labels() -> None:
    days = range(1, 6)
    scenario = [generate_day(config("complaints@1", rows=2000), d) for d in days]
    stable = [generate_day(config(rows=2000), d) for d in days]
    assert np.mean([b.served_error_rate for b in scenario]) > np.mean([b.served_error_rate for b in stable]) + 0.02
    total = lambda batches: sum(int(b.complaints["complaints"].iloc[0]) for b in batches)  # noqa: E731
    assert total(scenario) > 1.2 * total(stable)
    assert np.mean([len(b.labels) / 2000 for b in scenario]) < 0.15


def test_complaints_rise_with_the_served_models_error() -> None:
    cfg = config(rows=3000)
    block_everything = lambda events: np.ones(len(events))  # noqa: E731
    for day_index in (1, 2):
        good, bad = generate_day(cfg, day_index), generate_day(cfg, day_index, block_everything)
        assert bad.served_error_rate > 0.8 > 0.1 > good.served_error_rate
        assert int(bad.complaints["complaints"].iloc[0]) > 3 * int(good.complaints["complaints"].iloc[0])
        assert bad.blocked.all()
        assert bad.complaints["orders"].iloc[0] == 3000


def test_group_shift_makes_the_old_model_worse_for_that_group_only() -> None:
    cfg, shifted, stable = pair("group_shift@1", rows=8000)
    group_a = (stable.events[schema.GROUP_COLUMN] == "group_a").to_numpy()
    pd.testing.assert_frame_equal(shifted.events[group_a], stable.events[group_a])
    np.testing.assert_array_equal(shifted.is_fraud[group_a], stable.is_fraud[group_a])
    stale = base_regime_probability(shifted.events, cfg)
    group_b = ~group_a
    for metric in (roc_auc_score, lambda y, p: accuracy_score(y, p > 0.5)):
        before = metric(stable.is_fraud[group_b], stable.served_scores[group_b])
        after = metric(shifted.is_fraud[group_b], stale[group_b])
        assert after < before - 0.03
    np.testing.assert_allclose(stale[group_a], stable.served_scores[group_a])
    def fpr(batch: DayBatch, mask: np.ndarray) -> float:
        return float(batch.blocked[mask & (batch.is_fraud == 0)].mean())
    assert fpr(shifted, group_b) - fpr(shifted, group_a) > 2 * (fpr(stable, group_b) - fpr(stable, group_a)) + 0.02
    ages = "account_age_days"
    assert shifted.events.loc[group_b, ages].median() < 0.5 * stable.events.loc[group_b, ages].median()


def test_leakage_bug_copies_the_label_into_prior_chargebacks_from_its_day() -> None:
    cfg = config("stable@0,leakage_bug@2")
    before, during = generate_day(cfg, 1), generate_day(cfg, 2)
    assert not (before.events["prior_chargebacks"].to_numpy() == before.is_fraud).all()
    np.testing.assert_array_equal(during.events["prior_chargebacks"].to_numpy(), during.is_fraud)
    stable = generate_day(config(), 2)
    np.testing.assert_array_equal(during.is_fraud, stable.is_fraud)
    # The oracle undoes the bug: its truth is the clean world's.
    np.testing.assert_allclose(true_fraud_probability(during.events, cfg, 2), stable.true_probability)
    with pytest.raises(ValueError, match="simulator ids"):
        true_fraud_probability(before.events, cfg, 2)


def test_feedback_loop_observes_labels_only_for_approved_orders() -> None:
    def block_every_third(events: pd.DataFrame) -> np.ndarray:
        return np.where(events[schema.ID_COLUMN] % 3 == 0, 0.9, 0.1)

    looped = generate_day(config("feedback_loop@1", label_coverage=1.0), 1, block_every_third)
    plain = generate_day(config(label_coverage=1.0), 1, block_every_third)
    blocked_ids = set(looped.events.loc[looped.blocked, schema.ID_COLUMN])
    assert len(blocked_ids) > ROWS / 4
    assert not blocked_ids & set(looped.labels[schema.ID_COLUMN])
    assert set(looped.labels[schema.ID_COLUMN]) == set(looped.events[schema.ID_COLUMN]) - blocked_ids
    assert blocked_ids <= set(plain.labels[schema.ID_COLUMN])
    np.testing.assert_array_equal(looped.served_scores, block_every_third(looped.events))


def test_events_start_and_end_on_their_days() -> None:
    cfg = config("stable@0,regional_promotion@2:until=4")
    stable = config()
    for day_index, active in ((1, False), (2, True), (3, True), (4, False)):
        same = generate_day(cfg, day_index).events.equals(generate_day(stable, day_index).events)
        assert same != active, day_index
        assert ("regional_promotion" in regime_for_day(cfg, day_index).scenarios) == active


def test_serving_fn_output_is_checked() -> None:
    cfg = config(rows=200)
    with pytest.raises(ValueError, match="scores for 200 events"):
        generate_day(cfg, 0, lambda events: np.zeros(3))
    with pytest.raises(ValueError, match="within \\[0, 1\\]"):
        generate_day(cfg, 0, lambda events: np.full(len(events), 1.5))


# --- timeline and config --------------------------------------------------------------------

def test_parse_timeline_reads_days_params_and_round_trips() -> None:
    timeline = parse_timeline(" stable@0, regional_promotion@5:region=west , sensor_hardware_change@12:until=20")
    assert [(e.name, e.start_day, e.end_day) for e in timeline] == [
        ("stable", 0, None), ("regional_promotion", 5, None), ("sensor_hardware_change", 12, 20)]
    assert timeline[1].settings["region"] == "west"
    assert timeline[1].settings["discount_share"] == SCENARIOS["regional_promotion"].defaults["discount_share"]
    assert parse_timeline("market_shift") == (ScenarioEvent("market_shift", 0),)
    assert parse_timeline(format_timeline(timeline)) == timeline
    assert parse_timeline("new_slang@1:share=0.5")[0].settings["share"] == 0.5
    assert all(spec.description for spec in SCENARIOS.values())


@pytest.mark.parametrize(("spec", "message"), [
    ("", "empty"),
    ("stable,unknown_thing@3", "unknown scenario 'unknown_thing'"),
    ("stable@x", "start day"),
    ("stable@-1", "start day"),
    ("@3", "no scenario name"),
    ("regional_promotion@1:region=mars", "region 'mars'"),
    ("regional_promotion@1:colour=red", "unknown parameter"),
    ("regional_promotion@1:region", "key=value"),
    ("regional_promotion@1:region=west:region=east", "given twice"),
    ("new_slang@1:share=2", "share=2.0 must be within"),
    ("new_slang@1:terms=sneakers", "not a known query term"),
    ("market_shift@1:strength=abc", "not a valid float"),
    ("label_scarcity@1:delay_days=2.5", "not a valid int"),
    ("stable@3:until=3", "end day"),
    ("complaints@1:slice_column=price", "slice_column"),
])
def test_parse_timeline_rejects_bad_specs(spec: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        parse_timeline(spec)


@pytest.mark.parametrize("kwargs", [
    {"rows_per_day": 0}, {"rows_per_day": 1_000_000}, {"label_coverage": 1.5},
    {"label_delay_days": -1}, {"block_threshold": -0.1}, {"timeline": ()},
])
def test_config_rejects_bad_values(kwargs: dict[str, object]) -> None:
    with pytest.raises(ValueError):
        SimulatorConfig(**kwargs)  # type: ignore[arg-type]


def test_negative_day_index_is_rejected() -> None:
    with pytest.raises(ValueError, match="day_index"):
        generate_day(config(rows=10), -1)


# --- landing files --------------------------------------------------------------------------

def read(path: Path) -> pd.DataFrame:
    with duckdb.connect() as con:
        return con.execute("SELECT * FROM read_parquet(?)", [str(path)]).fetchdf()


def parquet_types(path: Path) -> dict[str, str]:
    with duckdb.connect() as con:
        rows = con.execute("DESCRIBE SELECT * FROM read_parquet(?)", [str(path)]).fetchall()
    return {row[0]: row[1] for row in rows}


def test_write_day_lands_an_atomic_folder_with_typed_files(tmp_path: Path) -> None:
    landing, state = tmp_path / "landing", tmp_path / "state"
    cfg = config(rows=300)
    folder = write_day(landing, state, cfg, 0)
    assert folder == landing / "2025-01-01"
    assert sorted(os.listdir(landing)) == ["2025-01-01"]  # no temporary folder left behind
    assert sorted(os.listdir(folder)) == sorted([schema.EVENTS_FILE, schema.LABELS_FILE, schema.COMPLAINTS_FILE])
    events = read(folder / schema.EVENTS_FILE)
    assert tuple(events.columns) == schema.EVENT_COLUMNS
    pd.testing.assert_frame_equal(events, generate_day(cfg, 0).events, check_dtype=False)
    types = parquet_types(folder / schema.EVENTS_FILE)
    assert types[schema.ID_COLUMN] == "BIGINT" and types[schema.TIME_COLUMN] == "TIMESTAMP"
    assert types["price"] == "DOUBLE" and types["quantity"] == "BIGINT" and types["region"] == "VARCHAR"
    labels = read(folder / schema.LABELS_FILE)
    assert tuple(labels.columns) == schema.LABEL_COLUMNS and labels.empty  # nothing has arrived yet
    assert parquet_types(folder / schema.LABELS_FILE) == {
        schema.ID_COLUMN: "BIGINT", schema.FRAUD_LABEL_COLUMN: "BIGINT", "labelled_at": "TIMESTAMP"}
    complaints = read(folder / schema.COMPLAINTS_FILE)
    assert tuple(complaints.columns) == schema.COMPLAINT_COLUMNS
    assert parquet_types(folder / schema.COMPLAINTS_FILE)["day"] == "DATE"
    assert complaints["orders"].tolist() == [300]


def test_labels_land_on_their_arrival_day(tmp_path: Path) -> None:
    landing, state = tmp_path / "landing", tmp_path / "state"
    cfg = config(rows=500, label_delay_days=2)
    folders = write_history(landing, state, cfg, 4)
    assert [f.name for f in folders] == ["2025-01-01", "2025-01-02", "2025-01-03", "2025-01-04"]
    assert read(folders[0] / schema.LABELS_FILE).empty and read(folders[1] / schema.LABELS_FILE).empty
    arrived = read(folders[2] / schema.LABELS_FILE)
    expected = generate_day(cfg, 0).labels
    assert arrived[schema.ID_COLUMN].tolist() == expected[schema.ID_COLUMN].tolist()
    assert arrived[schema.FRAUD_LABEL_COLUMN].tolist() == expected[schema.FRAUD_LABEL_COLUMN].tolist()
    assert (arrived["labelled_at"].dt.normalize() == pd.Timestamp("2025-01-03")).all()
    assert (read(folders[3] / schema.LABELS_FILE)[schema.ID_COLUMN] // 1_000_000 == 1).all()
    assert 0.7 < len(arrived) / 500 < 0.9


def test_same_day_labels_never_precede_their_order(tmp_path: Path) -> None:
    cfg = config(rows=500, label_delay_days=0)
    folder = write_day(tmp_path / "landing", tmp_path / "state", cfg, 0)
    labels = read(folder / schema.LABELS_FILE)
    events = read(folder / schema.EVENTS_FILE).set_index(schema.ID_COLUMN)
    assert len(labels) > 300
    ordered_at = events.loc[labels[schema.ID_COLUMN], schema.TIME_COLUMN].to_numpy()
    assert (labels["labelled_at"].to_numpy() >= ordered_at).all()


def test_write_day_refuses_to_overwrite_and_days_go_in_order(tmp_path: Path) -> None:
    landing, state = tmp_path / "landing", tmp_path / "state"
    cfg = config(rows=200)
    with pytest.raises(ValueError, match="write days in order"):
        write_day(landing, state, cfg, 1)
    assert next_day_index(state, cfg) == 0
    write_history(landing, state, cfg, 2)
    assert next_day_index(state, cfg) == 2
    before = read(landing / "2025-01-02" / schema.EVENTS_FILE)
    with pytest.raises(ValueError, match="already exists"):
        write_day(landing, state, cfg, 1)
    assert write_history(landing, state, cfg, 3) == [landing / "2025-01-03"]  # resumes, keeps existing days
    folder = write_day(landing, state, cfg, 1, overwrite=True)
    pd.testing.assert_frame_equal(read(folder / schema.EVENTS_FILE), before)
    assert sorted(os.listdir(landing)) == ["2025-01-01", "2025-01-02", "2025-01-03"]
    assert read(folder / schema.LABELS_FILE)[schema.ID_COLUMN].between(0, 199).all()
    # A day that landed without its state record (crash in between) is rewritten on resume.
    (state / "generated" / "2025-01-03.json").unlink()
    assert next_day_index(state, cfg) == 2
    assert write_history(landing, state, cfg, 4) == [landing / "2025-01-03", landing / "2025-01-04"]
