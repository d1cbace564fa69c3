"""gather_evidence against a real DuckDB file: every Evidence field from constructed summary rows."""

from __future__ import annotations

import copy
import dataclasses
import datetime as dt
import tomllib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import duckdb
import pytest

from ct_assets.core.data import schema
from ct_assets.core.data.ingest import ensure_ingest_tables
from ct_assets.core.decision.evidence import evidence_notes, evidence_to_dict, gather_evidence
from ct_assets.core.decision.policy import Evidence, decide
from ct_assets.core.decision.policy_config import (
    DEFAULT_POLICY_PATH,
    PolicyConfig,
    load_policy_config,
    parse_policy_config,
)
from ct_assets.core.monitoring.store import ensure_drift_tables
from ct_assets.core.release.deployment import promote, reject
from ct_assets.core.release.registry import (
    ModelRecord,
    ensure_registry_tables,
    register_candidate,
)

DAY = "2024-03-20"
CREATED = dt.datetime(2026, 1, 1, 12, 0)  # wall clock, unrelated to the simulated days


@pytest.fixture()
def con(tmp_path: Path) -> Iterator[duckdb.DuckDBPyConnection]:
    connection = duckdb.connect(str(tmp_path / "ct.duckdb"))
    ensure_drift_tables(connection)
    ensure_ingest_tables(connection)
    ensure_registry_tables(connection)
    yield connection
    connection.close()


def config_with(section: str, key: str, value: Any) -> PolicyConfig:
    raw = copy.deepcopy(tomllib.loads(DEFAULT_POLICY_PATH.read_text(encoding="utf-8")))
    raw[section][key] = value
    return parse_policy_config(raw)


def day(offset: int) -> dt.date:
    """DAY shifted by ``offset`` days."""
    return dt.date.fromisoformat(DAY) + dt.timedelta(days=offset)


def add_drift_report(con: duckdb.DuckDBPyConnection, partition: str, scope: str, severity: float,
                     level: str = "medium", segments: tuple[str, ...] = (), drifted: tuple[str, ...] = (),
                     unseen: float | None = 0.0, model_id: str | None = "m-prod") -> None:
    con.execute(
        "INSERT INTO drift_reports (report_id, partition, reference_id, model_id, severity, severity_level, scope, "
        "drifted_features, affected_segments, max_unseen_share, created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        [f"dr-{partition}", partition, "ref-1", model_id, severity, level, scope, list(drifted), list(segments),
         unseen, CREATED])


def add_concept(con: duckdb.DuckDBPyConnection, partition: str, verdict: str, auc: tuple[float, float, float] | None,
                covariate_small: bool | None = True) -> None:
    """``auc`` = (reference, current, ci_high of current - reference); None for insufficient labels."""
    metrics = [("auc", *auc), ("log_loss", 0.30, 0.35, 0.08)] if auc else [(None, None, None, None)]
    for metric, reference, current, ci_high in metrics:
        con.execute(
            "INSERT INTO concept_drift_results (partition, reference_id, model_id, verdict, metric, reference_value, "
            "current_value, difference, ci_high, beyond_covariate, covariate_drift_small, created_at) "
            "VALUES (?, 'ref-1', 'm-prod', ?, ?, ?, ?, ?, ?, false, ?, ?)",
            [partition, verdict, metric, reference, current,
             None if reference is None else current - reference, ci_high, covariate_small, CREATED])


def add_complaints(con: duckdb.DuckDBPyConnection, partition: str, alert: bool, ratio: float | None,
                   status: str = "normal", rate: float = 0.02, baseline_orders: int = 10_000,
                   baseline_complaints: int = 100) -> None:
    con.execute(
        "INSERT INTO complaint_results (partition, day, orders, complaints, baseline_orders, baseline_complaints, "
        "rate, rate_ratio, alert, status, created_at) VALUES (?, ?, 1000, 20, ?, ?, ?, ?, ?, ?, ?)",
        [partition, partition, baseline_orders, baseline_complaints, rate, ratio, alert, status, CREATED])


def add_orders(con: duckdb.DuckDBPyConnection, event_day: dt.date, n: int, first_id: int) -> range:
    con.execute("INSERT INTO raw_events (day, event_id) SELECT ?, range FROM range(?, ?)",
                [event_day, first_id, first_id + n])
    return range(first_id, first_id + n)


def add_labels(con: duckdb.DuckDBPyConnection, ids: range, event_day: dt.date, arrival_day: dt.date) -> None:
    con.execute("INSERT INTO labels (arrival_day, event_id, is_fraud, event_day) SELECT ?, range, 0, ? "
                "FROM range(?, ?)", [arrival_day, event_day, ids.start, ids.stop])


def add_model(con: duckdb.DuckDBPyConnection, model_id: str, path: str, window_end: dt.date | None,
              parent: str | None = None, cpu_s: float | None = 100.0, energy_kwh: float | None = 0.01,
              metrics: dict[str, Any] | None = None, created_at: dt.datetime = CREATED,
              train_gflops: float | None = None) -> None:
    register_candidate(con, ModelRecord(
        model_id=model_id, training_path=path, parent_model_id=parent, created_at=created_at,
        data_window_start=None if window_end is None else window_end - dt.timedelta(days=13),
        data_window_end=window_end, cpu_s=cpu_s, energy_kwh=energy_kwh, train_gflops=train_gflops,
        metrics=metrics or {}))


def test_empty_warehouse_gives_neutral_evidence_with_notes(tmp_path: Path, config: PolicyConfig) -> None:
    with duckdb.connect(str(tmp_path / "empty.duckdb")) as con:  # no table exists at all
        evidence = gather_evidence(con, DAY, config)
    assert (evidence.drift_scope, evidence.drift_severity_score, evidence.drift_severity_level) == ("none", 0.0, "none")
    assert evidence.affected_segments == evidence.drifted_features == evidence.affected_regions == ()
    assert (evidence.concept_drift_detected, evidence.metric_drop, evidence.covariate_drift_small) == (False, 0.0, False)
    assert (evidence.complaint_alert, evidence.complaint_rate_ratio) == (False, 1.0)
    assert (evidence.new_labels_since_training, evidence.labelled_rows_new_regime, evidence.label_coverage_recent) \
        == (0, 0, 0.0)
    assert evidence.production_model_exists is False and evidence.production_model_age_days == 0.0
    assert evidence.fine_tunes_since_full_retrain == 0 and evidence.fine_tune_divergence is None
    assert evidence.compute_budget_left == config.cost.budget_per_period
    assert evidence.retrain_cost_estimate is None and evidence.fine_tune_cost_estimate is None
    notes = evidence_notes(evidence)
    assert {"drift", "concept_drift", "complaints", "production_model", "labels", "cost"} <= set(notes)
    assert notes["drift"] == f"no drift report for {DAY}: drift treated as none"
    assert decide(evidence, config).action == "none"  # the policy accepts it: bootstrap waits for labels


def test_every_field_is_mapped_from_the_days_rows(con: duckdb.DuckDBPyConnection, config: PolicyConfig) -> None:
    # Production: a retrain (window ends day -10) fine-tuned twice, the last on data up to day -4.
    add_model(con, "m-base", "retrain", day(-10), cpu_s=500.0, train_gflops=5.0)
    add_model(con, "m-ft1", "fine_tune", day(-7), parent="m-base", cpu_s=50.0, train_gflops=0.5)
    add_model(con, "m-prod", "fine_tune", day(-4), parent="m-ft1", cpu_s=70.0, train_gflops=0.7,
              metrics={"fine_tune_divergence": 0.12})
    for model_id in ("m-base", "m-ft1", "m-prod"):
        promote(con, model_id, actor="test", reason="setup")
    # Orders and labels: 100 orders a day for the 7-day recent window; labels arrive a day later.
    for offset in range(-9, 1):
        ids = add_orders(con, day(offset), 100, first_id=(offset + 20) * 1_000)
        add_labels(con, ids[:60], day(offset), day(offset + 1))  # the day-0 labels arrive tomorrow
    # The shift: data drift on day -2 and 0, concept drift on day -1 and 0; day -3's report is below the
    # policy's severity threshold, so the new regime starts on day -2.
    add_drift_report(con, str(day(-3)), "local", 0.1, level="low")
    add_drift_report(con, str(day(-2)), "local", 0.4, segments=("region=south",), drifted=("discount",))
    add_concept(con, str(day(-1)), "degraded", (0.80, 0.74, -0.03))
    add_drift_report(con, DAY, "local", 0.45, segments=("region=south",), drifted=("discount", "log_price"),
                     unseen=0.02)
    add_concept(con, DAY, "degraded", (0.80, 0.75, -0.02), covariate_small=False)
    add_complaints(con, DAY, alert=True, ratio=2.0, status="alert")

    evidence = gather_evidence(con, DAY, config, risk_tier="high", architecture_change_required=True,
                               rapid_rollback_needed=True)

    assert evidence.drift_scope == "local" and evidence.drift_severity_score == pytest.approx(0.45)
    assert evidence.drift_severity_level == "medium"
    assert evidence.affected_segments == ("region=south",) and evidence.drifted_features == ("discount", "log_price")
    assert evidence.unseen_category_share == pytest.approx(0.02)
    assert evidence.concept_drift_detected is True and evidence.metric_drop == pytest.approx(0.05)
    assert evidence.covariate_drift_small is False
    assert evidence.complaint_alert is True and evidence.complaint_rate_ratio == pytest.approx(2.0)
    # Labels of events after the production window (day -3..-1 arrived by day 0): 3 x 60.
    assert evidence.new_labels_since_training == 180
    # The regime started on day -2: labels of day -2 and -1.
    assert evidence.labelled_rows_new_regime == 120
    # Recent window day -6..0: 700 orders, 6 x 60 labels arrived.
    assert evidence.label_coverage_recent == pytest.approx(360 / 700)
    assert evidence.production_model_age_days == 4.0
    assert evidence.fine_tunes_since_full_retrain == 2 and evidence.fine_tune_divergence == pytest.approx(0.12)
    # Spent in the 7-day period day -6..0: m-prod (0.7 GFLOPs); m-ft1 (window end day -7) is outside.
    assert evidence.compute_budget_left == pytest.approx(config.cost.budget_per_period - 0.7)
    assert evidence.retrain_cost_estimate == 5.0 and evidence.fine_tune_cost_estimate == pytest.approx(0.6)
    assert evidence.risk_tier == "high" and evidence.production_model_exists is True
    assert evidence.affected_regions == ("south",)
    assert evidence.architecture_change_required is True and evidence.rapid_rollback_needed is True
    assert {k: v for k, v in evidence.evidence_ids.items() if not k.startswith("note:")} == {
        "drift_report_id": f"dr-{DAY}", "drift_reference_id": "ref-1", "concept_drift_reference_id": "ref-1",
        "complaint_partition": DAY, "production_model_id": "m-prod"}
    assert evidence_notes(evidence)["new_regime"] == f"the current shift started on {day(-2)}: labels counted from then"
    # JSON-able snapshot of every field.
    snapshot = evidence_to_dict(evidence)
    assert snapshot["affected_segments"] == ["region=south"] and snapshot["metric_drop"] == evidence.metric_drop
    assert list(snapshot) == [f.name for f in dataclasses.fields(Evidence)] and snapshot["evidence_ids"]["production_model_id"] == "m-prod"


def test_noise_insufficient_labels_and_odd_complaint_ratios(con: duckdb.DuckDBPyConnection,
                                                            config: PolicyConfig) -> None:
    add_concept(con, DAY, "stable", (0.80, 0.78, 0.01))  # a point drop inside its CI
    add_complaints(con, DAY, alert=True, ratio=float("inf"), rate=0.01, baseline_orders=5_000, baseline_complaints=0)
    evidence = gather_evidence(con, DAY, config)
    assert evidence.metric_drop == 0.0 and evidence.concept_drift_detected is False
    assert "within its confidence interval" in evidence_notes(evidence)["metric"]
    # 0.01 / (0.5 / 5000) = 100: finite, and above any sane threshold.
    assert evidence.complaint_alert is True and evidence.complaint_rate_ratio == pytest.approx(100.0)
    assert "no complaints in the baseline" in evidence_notes(evidence)["complaints"]

    other = str(day(1))
    add_concept(con, other, "insufficient_labels", None, covariate_small=None)
    add_complaints(con, other, alert=False, ratio=None, status="insufficient_baseline")
    evidence = gather_evidence(con, other, config)
    assert (evidence.concept_drift_detected, evidence.metric_drop, evidence.covariate_drift_small) == (False, 0.0, False)
    assert evidence.complaint_rate_ratio == 1.0
    notes = evidence_notes(evidence)
    assert "too few labelled rows" in notes["concept_drift"] and "insufficient_baseline" in notes["complaints"]


def test_budget_window_cost_unit_and_median_estimates(con: duckdb.DuckDBPyConnection) -> None:
    # (id, path, window end offset, cpu_s, kWh): inside the 7-day period are offsets -6..0.
    runs = [("m-r1", "retrain", -30, 400.0, 0.4), ("m-r2", "retrain", -20, 800.0, 0.8),
            ("m-r3", "retrain", -6, 600.0, 0.6), ("m-f1", "fine_tune", -7, 40.0, 0.04),
            ("m-f2", "fine_tune", 0, 80.0, 0.08), ("m-f3", "fine_tune", -3, None, None),
            ("m-future", "retrain", 1, 9_999.0, 9.9)]
    for model_id, path, offset, cpu_s, kwh in runs:
        add_model(con, model_id, path, day(offset), cpu_s=cpu_s, energy_kwh=kwh)
    reject(con, "m-r3", reason="gate failed")  # its compute was spent all the same
    # A model without a data window counts on its created_at day.
    add_model(con, "m-manual", "retrain", None, cpu_s=10.0, energy_kwh=0.01,
              created_at=dt.datetime.combine(day(-1), dt.time(9)))

    cpu_config = config_with("cost", "unit", "cpu_seconds")
    cpu = gather_evidence(con, DAY, cpu_config)
    assert cpu.compute_budget_left == pytest.approx(cpu_config.cost.budget_per_period - (600.0 + 80.0 + 10.0))
    assert cpu.retrain_cost_estimate == pytest.approx(500.0)  # median of 400, 800, 600, 10 (m-future is later)
    assert cpu.fine_tune_cost_estimate == pytest.approx(60.0)  # median of 40, 80 (m-f3 unmeasured)
    assert "1 of 4 runs" in evidence_notes(cpu)["cost"]

    kwh_config = config_with("cost", "unit", "kwh")
    kwh = gather_evidence(con, DAY, kwh_config)
    assert kwh.compute_budget_left == pytest.approx(kwh_config.cost.budget_per_period - (0.6 + 0.08 + 0.01))
    assert kwh.fine_tune_cost_estimate == pytest.approx(0.06)

    shorter = gather_evidence(con, DAY, config_with("cost", "period_days", 1))
    assert shorter.compute_budget_left == pytest.approx(shorter_budget := load_policy_config().cost.budget_per_period)
    assert shorter_budget and "have no measured train_gflops" in evidence_notes(shorter)["cost"]


def test_the_deterministic_unit_reads_the_train_gflops_column(con: duckdb.DuckDBPyConnection) -> None:
    add_model(con, "m-r1", "retrain", day(-2), cpu_s=5.0, train_gflops=3.0)
    add_model(con, "m-f1", "fine_tune", day(0), cpu_s=0.5, train_gflops=0.6)
    add_model(con, "m-old", "fine_tune", day(-1), cpu_s=0.4)  # registered before the unit existed
    config = load_policy_config()
    evidence = gather_evidence(con, DAY, config)
    assert config.cost.unit == "train_gflops"
    assert evidence.compute_budget_left == pytest.approx(config.cost.budget_per_period - 3.6)
    assert (evidence.retrain_cost_estimate, evidence.fine_tune_cost_estimate) == pytest.approx((3.0, 0.6))
    assert "1 of 3 runs" in evidence_notes(evidence)["cost"]


def test_fine_tune_chain_counts_back_to_the_last_retrain(con: duckdb.DuckDBPyConnection,
                                                         config: PolicyConfig) -> None:
    add_model(con, "m-r", "retrain", day(-9))
    add_model(con, "m-f1", "fine_tune", day(-6), parent="m-r")
    add_model(con, "m-f2", "fine_tune", day(-3), parent="m-f1")
    add_model(con, "m-f3", "fine_tune", day(-1), parent="m-f2")
    add_model(con, "m-orphan", "fine_tune", day(-1), parent="m-deleted")
    add_model(con, "m-r2", "retrain", day(-1), parent="m-f3")
    chain = {}
    for model_id in ("m-r", "m-f1", "m-f2", "m-f3", "m-orphan", "m-r2"):
        promote(con, model_id, actor="test", reason="setup")
        chain[model_id] = gather_evidence(con, DAY, config)
    assert [e.fine_tunes_since_full_retrain for e in chain.values()] == [0, 1, 2, 3, 1, 0]
    assert "m-deleted" in evidence_notes(chain["m-orphan"])["fine_tune_chain"]
    assert chain["m-f3"].fine_tune_divergence is None  # never reported by the training path here


def test_labels_count_only_what_had_arrived_by_the_day(con: duckdb.DuckDBPyConnection, config: PolicyConfig) -> None:
    add_model(con, "m-prod", "retrain", day(-5))
    promote(con, "m-prod", actor="test", reason="setup")
    ids = add_orders(con, day(-6), 50, first_id=1)
    add_labels(con, ids, day(-6), day(-5))  # inside the training window: not new
    ids = add_orders(con, day(-2), 50, first_id=100)
    add_labels(con, ids[:30], day(-2), day(0))
    add_labels(con, ids[30:], day(-2), day(2))  # arrives after DAY
    before = gather_evidence(con, DAY, config)
    assert before.new_labels_since_training == before.labelled_rows_new_regime == 30
    assert "new_regime" not in evidence_notes(before)  # no ongoing shift: regime = since training
    assert gather_evidence(con, str(day(2)), config).new_labels_since_training == 50
    assert gather_evidence(con, DAY, config) == before  # re-evaluation is deterministic


def test_affected_regions_and_jurisdiction_note(con: duckdb.DuckDBPyConnection) -> None:
    config = config_with("jurisdiction", "signoff_regions", ["central"])
    cases = {
        "2024-03-01": ("global", ("sensor_motion",), ("region=north",)),
        "2024-03-02": ("local", ("discount",), ("region=south", "region=central")),
        "2024-03-03": ("local", ("query_term",), ("category=electronics",)),
        "2024-03-04": ("none", (), ()),
    }
    for partition, (scope, drifted, segments) in cases.items():
        add_drift_report(con, partition, scope, 0.5 if scope != "none" else 0.0, segments=segments, drifted=drifted)
    regions = {p: gather_evidence(con, p, config).affected_regions for p in cases}
    assert regions == {"2024-03-01": schema.REGIONS, "2024-03-02": ("south", "central"),
                       "2024-03-03": schema.REGIONS, "2024-03-04": ()}
    local = gather_evidence(con, "2024-03-02", config)
    assert evidence_notes(local)["jurisdiction"] == "affected regions central require human sign-off by regulation"
    assert "jurisdiction" not in evidence_notes(gather_evidence(con, "2024-03-02", load_policy_config()))


def test_a_drift_report_against_another_model_is_noted(con: duckdb.DuckDBPyConnection, config: PolicyConfig) -> None:
    add_model(con, "m-new", "retrain", day(-1))
    promote(con, "m-new", actor="test", reason="setup")
    add_drift_report(con, DAY, "local", 0.4, segments=("region=west",), model_id="m-old")
    assert "m-old" in evidence_notes(gather_evidence(con, DAY, config))["drift_model"]


def test_read_only_connection_and_input_errors(tmp_path: Path, config: PolicyConfig) -> None:
    path = tmp_path / "ct.duckdb"
    with duckdb.connect(str(path)) as con:
        ensure_drift_tables(con)
        add_drift_report(con, DAY, "global", 0.9, level="high", drifted=("sensor_signal",))
    with duckdb.connect(str(path), read_only=True) as con:
        assert gather_evidence(con, DAY, config).drift_scope == "global"
        with pytest.raises(ValueError, match="ISO date"):
            gather_evidence(con, "yesterday", config)
        with pytest.raises(ValueError, match="recent_window_days"):
            gather_evidence(con, DAY, config, recent_window_days=0)
        with pytest.raises(ValueError, match="risk_tier"):
            gather_evidence(con, DAY, config, risk_tier="medium")


def test_label_evidence_on_simulated_and_ingested_days(tmp_path: Path, config: PolicyConfig) -> None:
    from ct_assets.core.data.ingest import ingest_events, ingest_labels
    from ct_assets.simulation.config import SimulatorConfig
    from ct_assets.simulation.landing import write_history

    simulator = SimulatorConfig(rows_per_day=300, label_delay_days=1, label_coverage=0.8)
    landing, quarantine = tmp_path / "landing", tmp_path / "quarantine"
    write_history(landing, tmp_path / "state", simulator, days=8)
    days = [str(simulator.day_date(i)) for i in range(8)]
    with duckdb.connect(str(tmp_path / "ct.duckdb")) as con:
        for landed in days:
            ingest_events(con, landing, quarantine, landed)
            ingest_labels(con, landing, quarantine, landed)
        last = days[-1]
        first = gather_evidence(con, last, config)  # no production model: every arrived label counts
        ensure_registry_tables(con)
        add_model(con, "m-prod", "retrain", simulator.day_date(3))
        promote(con, "m-prod", actor="test", reason="setup")
        later = gather_evidence(con, last, config)
        # Independent count through the orders' own day rather than the label's event_day.
        after_window = con.execute(
            "SELECT count(*) FROM labels l JOIN raw_events e USING (event_id) WHERE e.day > ? AND l.arrival_day <= ?",
            [simulator.day_date(3), last]).fetchall()[0][0]
        total = con.execute("SELECT count(*) FROM labels").fetchall()[0][0]
    assert first.new_labels_since_training == first.labelled_rows_new_regime == total > 0
    # 7-day window: six days with ~80% of labels arrived, the last day none yet.
    assert first.label_coverage_recent == pytest.approx(0.8 * 6 / 7, abs=0.04)
    assert later.new_labels_since_training == after_window and 0 < after_window < total
    assert later.production_model_age_days == 4.0
