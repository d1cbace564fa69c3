"""Backtest stream sources: synthetic drift generators, the simulator stream, the table/file adapter."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from sklearn.linear_model import LogisticRegression
from sklearn.tree import DecisionTreeClassifier

from ct_assets.core.backtest.adapter import stream_from_file, stream_from_table
from ct_assets.core.backtest.stream import LABEL_COLUMN, Stream
from ct_assets.core.backtest.synthetic import (
    SYNTHETIC_STREAMS,
    agrawal_stream,
    hyperplane_stream,
    sea_stream,
    stagger_stream,
)
from ct_assets.core.data import schema
from ct_assets.core.data.features import features_from_events
from ct_assets.core.training.preprocessing import MODEL_INPUTS
from ct_assets.simulation.backtest_stream import (
    MIXED_TIMELINE,
    simulator_stream,
    timeline_change_points,
)
from ct_assets.simulation.config import SimulatorConfig
from ct_assets.simulation.generation import generate_day
from ct_assets.simulation.scenarios import parse_timeline

SMALL = {"n_batches": 12, "batch_size": 400, "change_points": (6,)}


def inputs(stream: Stream) -> list[str]:
    return [*stream.spec.numeric_features, *stream.spec.categorical_features]


def one_hot(frame: pd.DataFrame, stream: Stream, columns: pd.Index | None = None) -> pd.DataFrame:
    encoded = pd.get_dummies(frame[inputs(stream)]).astype(float)
    return encoded if columns is None else encoded.reindex(columns=columns, fill_value=0.0)


# ---------------------------------------------------------------------------------------------
# Synthetic generators
# ---------------------------------------------------------------------------------------------

@pytest.mark.parametrize("name", sorted(SYNTHETIC_STREAMS))
@pytest.mark.parametrize("drift", ["abrupt", "gradual"])
def test_synthetic_streams_are_deterministic_and_well_formed(name: str, drift: str) -> None:
    make = SYNTHETIC_STREAMS[name]
    first, again = make(seed=3, drift=drift, **SMALL), make(seed=3, drift=drift, **SMALL)
    other = make(seed=4, drift=drift, **SMALL)
    assert first.n_batches == 12 and first.spec.change_points == (6,)
    assert first.spec.name == name and first.spec.protected_column is None
    for a, b in zip(first.batches, again.batches):
        pd.testing.assert_frame_equal(a, b)
    assert not all(a.equals(b) for a, b in zip(first.batches, other.batches))
    for batch in first.batches:
        assert len(batch) == 400
        assert set(batch.columns) == set(first.spec.required_columns)
        assert batch[LABEL_COLUMN].dtype == np.int64
        assert 0.0 < batch[LABEL_COLUMN].mean() < 1.0
        assert batch[list(first.spec.numeric_features)].notna().all().all()
        for column in first.spec.categorical_features:
            assert batch[column].map(type).eq(str).all()


def test_sea_labels_follow_the_threshold_in_force() -> None:
    stream = sea_stream(n_batches=8, batch_size=500, change_points=(2, 4, 6), noise=0.0, seed=1)
    assert stream.spec.numeric_features == ("f1", "f2", "f3")
    for index, theta in zip((0, 2, 4, 6), (8.0, 9.0, 7.0, 9.5)):
        for batch in stream.batches[index:index + 2]:
            assert batch[["f1", "f2", "f3"]].min().min() >= 0 and batch[["f1", "f2", "f3"]].max().max() <= 10
            assert ((batch.f1 + batch.f2 <= theta).astype(int) == batch.label).all()
    noisy = sea_stream(n_batches=8, batch_size=2000, change_points=(4,), noise=0.1, seed=1)
    before = pd.concat(noisy.batches[:4])
    flipped = ((before.f1 + before.f2 <= 8.0).astype(int) != before.label).mean()
    assert 0.08 < flipped < 0.12


def test_sea_pre_change_concept_loses_accuracy_after_the_change() -> None:
    stream = sea_stream(n_batches=12, batch_size=1000, change_points=(6,), thresholds=(8.0, 7.0), seed=2)
    old = lambda b: ((b.f1 + b.f2 <= 8.0).astype(int) == b.label).mean()
    before = np.mean([old(b) for b in stream.batches[:6]])
    after = np.mean([old(b) for b in stream.batches[6:]])
    assert before == pytest.approx(0.9, abs=0.02)  # only the 10 % label noise
    assert before - after > 0.05  # theta 8 -> 7 relabels every point with 7 < f1 + f2 <= 8


def test_hyperplane_model_of_the_old_plane_degrades_after_the_change() -> None:
    stream = hyperplane_stream(n_batches=12, batch_size=1000, change_points=(6,), magnitude=0.25, seed=5)
    assert stream.spec.numeric_features == tuple(f"x{i}" for i in range(10))
    train = pd.concat(stream.batches[:5])
    model = LogisticRegression(max_iter=1000).fit(train[inputs(stream)], train.label)
    held_out = model.score(stream.batches[5][inputs(stream)], stream.batches[5].label)
    after = np.mean([model.score(b[inputs(stream)], b.label) for b in stream.batches[6:]])
    assert held_out > 0.88  # 5 % label noise, a linear concept
    assert held_out - after > 0.08


def test_hyperplane_gradual_rotation_moves_step_by_step_to_the_abrupt_plane() -> None:
    settings = {"n_batches": 12, "batch_size": 2000, "change_points": (4,), "gradual_width": 4, "noise": 0.0,
                "seed": 6, "magnitude": 0.3}
    still = hyperplane_stream(**{**settings, "magnitude": 0.0})
    abrupt, gradual = hyperplane_stream(**settings), hyperplane_stream(**settings, drift="gradual")
    moved = lambda s, i: (s.batches[i].label != still.batches[i].label).mean()
    assert moved(abrupt, 3) == moved(gradual, 3) == 0.0
    assert moved(abrupt, 4) > 0.1
    assert moved(gradual, 4) < moved(gradual, 5) < moved(gradual, 7)
    assert moved(gradual, 4) < moved(abrupt, 4) / 2
    for i in (8, 11):  # both reach the same hyperplane
        pd.testing.assert_series_equal(gradual.batches[i].label, abrupt.batches[i].label)


def test_stagger_concepts_are_the_published_rules_and_differ() -> None:
    stream = stagger_stream(n_batches=6, batch_size=900, change_points=(2, 4), seed=7)
    assert stream.spec.categorical_features == ("size", "color", "shape")
    assert stream.spec.numeric_features == ()
    rules = {
        1: lambda b: (b["size"] == "small") & (b.color == "red"),
        2: lambda b: (b.color == "green") | (b["shape"] == "circle"),
        3: lambda b: b["size"].isin(["medium", "large"]),
    }
    frames = [pd.concat(stream.batches[i:i + 2], ignore_index=True) for i in (0, 2, 4)]
    for concept, frame in zip((1, 2, 3), frames):
        assert (rules[concept](frame).astype(int) == frame.label).all()
        for other in set(rules) - {concept}:
            assert (rules[other](frame).astype(int) != frame.label).mean() > 0.2
    assert {v for b in stream.batches for v in b["size"]} == {"small", "medium", "large"}


def test_stagger_gradual_drift_mixes_the_two_concepts() -> None:
    stream = stagger_stream(n_batches=10, batch_size=3000, change_points=(3,), drift="gradual", gradual_width=4,
                            concepts=(1, 2), seed=8)
    shares = []
    for batch in stream.batches:
        old = ((batch["size"] == "small") & (batch.color == "red")).astype(int)
        new = ((batch.color == "green") | (batch["shape"] == "circle")).astype(int)
        differ = old != new
        assert ((batch.label == old) | (batch.label == new)).all()
        shares.append(float((batch.label[differ] == new[differ]).mean()))
    assert shares[:3] == [0.0, 0.0, 0.0] and shares[7:] == [1.0, 1.0, 1.0]
    # Linear ramp: on average 1/8, 3/8, 5/8, 7/8 of the rows follow the new concept.
    assert np.allclose(shares[3:7], [0.125, 0.375, 0.625, 0.875], atol=0.05)


def test_agrawal_attributes_ranges_and_concept_switch() -> None:
    stream = agrawal_stream(n_batches=10, batch_size=1000, change_points=(5,), functions=(1, 2), seed=9)
    spec = stream.spec
    assert spec.numeric_features == ("salary", "commission", "age", "hvalue", "hyears", "loan")
    assert spec.categorical_features == ("elevel", "car", "zipcode") and spec.segment_columns == ("zipcode",)
    frame = pd.concat(stream.batches, ignore_index=True)
    assert frame.salary.between(20e3, 150e3).all() and frame.age.between(20, 80).all()
    assert (frame.commission[frame.salary >= 75e3 * 1.1] == 0).all()
    assert frame.loan.between(0, 500e3).all() and frame.hyears.between(1, 30).all()
    assert set(frame.zipcode) == {f"zipcode{i}" for i in range(1, 10)}
    assert set(frame.car) == {f"car{i}" for i in range(1, 21)} and set(frame.elevel) == {f"level{i}" for i in range(5)}
    # House values scale with the zipcode: zipcode1 is the dearest, zipcode9 the cheapest.
    by_zip = frame.groupby("zipcode").hvalue.median()
    assert by_zip["zipcode1"] > 5 * by_zip["zipcode9"]
    # Function 1 (age < 40 or >= 60 is group A) holds exactly before the change (age is perturbed by
    # at most 3 years, so only rows away from the 40/60 borders are checked).
    before = pd.concat(stream.batches[:5])
    clear = ~before.age.between(37, 43) & ~before.age.between(57, 63)
    rule = ((before.age < 40) | (before.age >= 60)).astype(int)
    assert (rule[clear] == before.label[clear]).all()


def test_agrawal_model_of_the_old_function_degrades_after_the_change() -> None:
    stream = agrawal_stream(n_batches=10, batch_size=1000, change_points=(5,), functions=(1, 9), seed=10)
    train = pd.concat(stream.batches[:4])
    columns = one_hot(train, stream).columns
    model = DecisionTreeClassifier(max_depth=6, random_state=0).fit(one_hot(train, stream), train.label)
    score = lambda b: model.score(one_hot(b, stream, columns), b.label)
    held_out = score(stream.batches[4])
    after = np.mean([score(b) for b in stream.batches[5:]])
    assert held_out > 0.85
    assert held_out - after > 0.25


@pytest.mark.parametrize(("kwargs", "argument"), [
    ({"drift": "sudden"}, "drift"),
    ({"change_points": (0,)}, "change_points"),
    ({"change_points": (12,)}, "change_points"),
    ({"change_points": (6, 4)}, "change_points"),
    ({"change_points": (4, 6), "drift": "gradual", "gradual_width": 3}, "gradual_width"),
    ({"noise": 0.7}, "noise"),
    ({"n_batches": 1}, "n_batches"),
    ({"batch_size": 0}, "batch_size"),
    ({"gradual_width": 0}, "gradual_width"),
    ({"seed": -1}, "seed"),
])
def test_synthetic_streams_reject_bad_arguments(kwargs: dict, argument: str) -> None:
    for make in SYNTHETIC_STREAMS.values():
        with pytest.raises(ValueError, match=argument):
            make(**{**SMALL, **kwargs})


def test_generator_specific_arguments_are_checked() -> None:
    with pytest.raises(ValueError, match="n_drift_features"):
        hyperplane_stream(**SMALL, n_features=3, n_drift_features=4)
    with pytest.raises(ValueError, match="magnitude"):
        hyperplane_stream(**SMALL, magnitude=-0.1)
    with pytest.raises(ValueError, match="functions"):
        agrawal_stream(**SMALL, functions=(1, 11))
    with pytest.raises(ValueError, match="concepts"):
        stagger_stream(**SMALL, concepts=(4,))
    with pytest.raises(ValueError, match="thresholds"):
        sea_stream(**SMALL, thresholds=())


# ---------------------------------------------------------------------------------------------
# Simulator stream
# ---------------------------------------------------------------------------------------------

TIMELINE = "stable@0,regional_promotion@3:until=6,market_shift@5"


def test_simulator_stream_uses_the_live_features_labels_and_columns() -> None:
    stream = simulator_stream(TIMELINE, n_days=8, seed=2, events_per_day=300)
    spec = stream.spec
    assert stream.n_batches == 8 and spec.change_points == (3, 5, 6)
    assert (*spec.numeric_features, *spec.categorical_features) == MODEL_INPUTS
    assert spec.protected_column == schema.GROUP_COLUMN and spec.protected_column not in MODEL_INPUTS
    assert spec.segment_columns == schema.SEGMENT_COLUMNS

    config = SimulatorConfig(seed=2, rows_per_day=300, timeline=parse_timeline(TIMELINE))
    days = [generate_day(config, d) for d in range(8)]
    for day in (0, 6):
        batch = stream.batches[day]
        assert len(batch) == 300 and (batch["day"] == pd.Timestamp(config.day_date(day))).all()
        assert (batch[schema.ID_COLUMN].to_numpy() == days[day].events[schema.ID_COLUMN].to_numpy()).all()
        assert (batch[LABEL_COLUMN].to_numpy() == days[day].is_fraud).all()
        # The same features the warehouse builds from the day and its history (7-day window).
        history = pd.concat([d.events for d in days[max(0, day - 6):day]], ignore_index=True) if day else None
        live = features_from_events(days[day].events, history)
        pd.testing.assert_frame_equal(batch[list(live.columns)], live, check_dtype=False)

    again = simulator_stream(TIMELINE, n_days=8, seed=2, events_per_day=300)
    other = simulator_stream(TIMELINE, n_days=8, seed=3, events_per_day=300)
    pd.testing.assert_frame_equal(stream.batches[4], again.batches[4])
    assert not stream.batches[4][LABEL_COLUMN].equals(other.batches[4][LABEL_COLUMN])


def test_simulator_stream_defaults_and_checks() -> None:
    assert timeline_change_points(MIXED_TIMELINE, 60) == (12, 20, 26, 33, 41, 50)
    assert timeline_change_points(MIXED_TIMELINE, 25) == (12, 20)
    names = {event.name for event in parse_timeline(MIXED_TIMELINE)}
    assert {"regional_promotion", "sensor_hardware_change", "new_slang", "market_shift"} <= names
    with pytest.raises(ValueError, match="n_days"):
        simulator_stream(n_days=1)
    with pytest.raises(ValueError, match="events_per_day"):
        simulator_stream(n_days=5, events_per_day=0)
    with pytest.raises(ValueError, match="unknown scenario"):
        simulator_stream("stable@0,meteor@3", n_days=5, events_per_day=50)


# ---------------------------------------------------------------------------------------------
# Adapter
# ---------------------------------------------------------------------------------------------

def history_table() -> pd.DataFrame:
    """Ten orders over two weeks and two months; one without a label, one without a time."""
    return pd.DataFrame({
        "created_at": ["2024-01-29 09:00", "2024-01-29 18:30", "2024-01-30 08:00", "2024-02-04 23:59",
                       "2024-02-05 00:01", None, "2024-02-05 12:00", "2024-01-28 07:00", "2024-02-07 10:00",
                       "2024-02-07 11:00"],
        "amount": [10.0, 20.0, 30.0, 40.0, 50.0, 60.0, 70.0, 80.0, 90.0, 100.0],
        "country": ["de", "fr", "de", None, "fr", "de", "de", "it", "fr", "de"],
        "group": ["a", "b", "a", "a", "b", "a", "b", "b", "a", "b"],
        "outcome": ["fraud", "ok", "ok", "fraud", "ok", "ok", None, "ok", "fraud", "ok"],
    })


def adapt(table: pd.DataFrame, **kwargs: object) -> Stream:
    settings = {"name": "orders", "timestamp_column": "created_at", "label_column": "outcome",
                "numeric_features": ("amount",), "categorical_features": ("country",),
                "protected_column": "group", "positive_label": "fraud", **kwargs}
    return stream_from_table(table, **settings)  # type: ignore[arg-type]


def test_adapter_batches_by_day_in_time_order_and_maps_labels() -> None:
    stream = adapt(history_table(), change_points=(2,))
    # Rows with a missing time (row 5) or label (row 6) are dropped and counted.
    assert "8 rows in 6 day batches" in stream.spec.description
    assert "2 rows dropped" in stream.spec.description
    days = [batch["created_at"].dt.date.unique().tolist() for batch in stream.batches]
    assert [str(d[0]) for d in days] == ["2024-01-28", "2024-01-29", "2024-01-30", "2024-02-04", "2024-02-05",
                                         "2024-02-07"]
    assert stream.batches[0].amount.tolist() == [80.0]  # the earliest order comes first whatever the input order
    assert stream.batches[1][LABEL_COLUMN].tolist() == [1, 0]
    assert stream.batches[-1][LABEL_COLUMN].tolist() == [1, 0]
    assert stream.batches[3].country.tolist() == [None]  # missing category stays missing
    assert stream.spec.protected_column == "group" and stream.spec.change_points == (2,)
    assert set(stream.batches[0].columns) == {"created_at", "amount", "country", "group", LABEL_COLUMN}


def test_adapter_batches_by_week_month_and_rows() -> None:
    table = history_table()
    weeks = adapt(table, batch_by="week")
    # ISO weeks: Sunday 2024-01-28 closes one week; Mon 01-29 .. Sun 02-04 is the next; then 02-05 ..
    assert [len(b) for b in weeks.batches] == [1, 4, 3]
    months = adapt(table, batch_by="month")
    assert [len(b) for b in months.batches] == [4, 4]
    rows = adapt(table, batch_by="rows", batch_rows=3)
    assert [len(b) for b in rows.batches] == [3, 3, 2]
    assert rows.batches[0].amount.tolist() == [80.0, 10.0, 20.0]


def test_adapter_label_mapping_variants() -> None:
    table = history_table().dropna(subset=["outcome"])
    numeric = table.assign(outcome=(table.outcome == "fraud").astype(int))
    assert adapt(numeric, positive_label=1).batches[1][LABEL_COLUMN].tolist() == [1, 0]
    flags = table.assign(outcome=table.outcome == "ok")
    assert adapt(flags, positive_label=True).batches[1][LABEL_COLUMN].tolist() == [0, 1]
    aware = table.assign(created_at=pd.to_datetime(table.created_at).dt.tz_localize("Europe/Berlin"))
    # 2024-01-29 00:30 in Berlin is 2024-01-28 23:30 UTC: days are UTC days.
    shifted = aware.copy()
    shifted.loc[0, "created_at"] = pd.Timestamp("2024-01-29 00:30", tz="Europe/Berlin")
    assert len(adapt(shifted).batches[0]) == 2


def test_adapter_change_times_name_the_first_batch_at_or_after_them() -> None:
    # Day batches start 01-28 07:00, 01-29 09:00, 01-30 08:00, 02-04 23:59, 02-05 00:01, 02-07 10:00.
    assert adapt(history_table(), change_times=("2024-02-05",)).spec.change_points == (4,)
    assert adapt(history_table(), change_points=(2,), change_times=("2024-02-04 12:00",)).spec.change_points == (2, 3)
    with pytest.raises(ValueError, match="not after the first batch"):
        adapt(history_table(), change_times=("2024-01-01",))


def test_adapter_reads_labels_without_or_with_a_positive_label() -> None:
    table = history_table().dropna(subset=["outcome"])
    zero_one = table.assign(outcome=(table.outcome == "fraud").astype(int))
    assert adapt(zero_one, positive_label=None).batches[1][LABEL_COLUMN].tolist() == [1, 0]
    assert adapt(zero_one.assign(outcome=zero_one.outcome == 1), positive_label=None).batches[1][
        LABEL_COLUMN].tolist() == [1, 0]
    # A command-line value is read as the label column's type.
    assert adapt(zero_one, positive_label="0").batches[1][LABEL_COLUMN].tolist() == [0, 1]
    assert adapt(zero_one.assign(outcome=zero_one.outcome == 1), positive_label="true").batches[1][
        LABEL_COLUMN].tolist() == [1, 0]
    # More than two values with a positive label: that value against the rest.
    three = table.assign(outcome=table.outcome.where(table.amount != 20.0, "disputed"))
    assert adapt(three).batches[1][LABEL_COLUMN].tolist() == [1, 0]


@pytest.mark.parametrize(("change", "kwargs", "message"), [
    (lambda t: t.drop(columns="country"), {}, "lacks columns"),
    (lambda t: t.assign(created_at=t.created_at.where(t.index != 2, "yesterday-ish")), {}, "unparseable"),
    (lambda t: t.assign(created_at=range(len(t))), {}, "epoch"),
    (lambda t: t.assign(outcome=t.outcome.where(t.index != 0, "chargeback")), {"positive_label": None},
     "3 values .* give the positive label"),
    (lambda t: t, {"positive_label": None}, "2 values .* give the positive label"),
    (lambda t: t.assign(outcome="ok"), {}, "single value"),
    (lambda t: t, {"positive_label": "yes"}, "positive label 'yes' is not one of"),
    (lambda t: t.assign(created_at="2024-01-29 10:00"), {}, "at least 2"),
    (lambda t: t, {"batch_by": "hour"}, "batch_by"),
    (lambda t: t, {"batch_by": "rows"}, "batch_rows"),
    (lambda t: t, {"batch_rows": 3}, "batch_rows"),
    (lambda t: t, {"numeric_features": ("amount", "outcome")}, "cannot be features"),
    (lambda t: t.assign(amount="cheap"), {}, "non-numeric"),
])
def test_adapter_rejects_bad_tables(change, kwargs: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        adapt(change(history_table()), **kwargs)


def test_stream_from_parquet_and_csv_files(tmp_path: Path) -> None:
    table = history_table()
    expected = adapt(table)
    typed = table.assign(created_at=pd.to_datetime(table.created_at, format="%Y-%m-%d %H:%M"))
    typed.to_parquet(tmp_path / "orders.parquet", index=False)
    typed.to_csv(tmp_path / "orders.csv", index=False)
    settings = {"name": "orders", "timestamp_column": "created_at", "label_column": "outcome",
                "numeric_features": ("amount",), "categorical_features": ("country",),
                "protected_column": "group", "positive_label": "fraud"}
    for path in (tmp_path / "orders.parquet", tmp_path / "orders.csv"):
        stream = stream_from_file(path, **settings)
        assert stream.n_batches == expected.n_batches
        for got, want in zip(stream.batches, expected.batches):
            pd.testing.assert_frame_equal(got, want, check_dtype=False)
    with pytest.raises(ValueError, match="unsupported file type"):
        stream_from_file(tmp_path / "orders.json", **settings)
    with pytest.raises(FileNotFoundError):
        stream_from_file(tmp_path / "missing.csv", **settings)
