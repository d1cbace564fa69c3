"""Drift tables in a real DuckDB file: round trip and atomic per-partition replacement."""

from __future__ import annotations

import dataclasses
import datetime as dt
import json

import duckdb
import numpy as np
import pandas as pd
import pytest

from ct_assets.core.data import schema
from ct_assets.core.monitoring.complaints import evaluate_complaint_rate
from ct_assets.core.monitoring.concept_drift import detect_concept_drift
from ct_assets.core.monitoring.drift.report import build_drift_report
from ct_assets.core.monitoring.drift.types import DriftConfig, DriftReport
from ct_assets.core.monitoring.store import (
    ANALYST_TABLES,
    drift_report_id,
    ensure_drift_tables,
    write_complaint_result,
    write_concept_drift_result,
    write_drift_report,
)

CREATED = dt.datetime(2025, 3, 2, 6, 0, 0)


def features(seed: int, n_rows: int, south_discount: float = 0.0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    terms = rng.choice(list(schema.QUERY_TERMS), size=n_rows)
    frame = pd.DataFrame({
        schema.ID_COLUMN: np.arange(n_rows) + seed * 1_000_000,
        "region": rng.choice(schema.REGIONS, size=n_rows),
        "channel": rng.choice(schema.CHANNELS, size=n_rows),
        "query_term": terms,
        "category": [schema.QUERY_TERMS[t] for t in terms],
        schema.GROUP_COLUMN: rng.choice(schema.PROTECTED_GROUPS, size=n_rows),
        **{name: rng.normal(size=n_rows) for name in schema.FEATURE_NUMERIC},
    })
    frame["discount"] = rng.beta(2.0, 10.0, n_rows) + np.where(frame["region"] == "south", south_discount, 0.0)
    return frame


@pytest.fixture(scope="module")
def report() -> DriftReport:
    reference, current = features(1, 8_000), features(2, 4_000, south_discount=0.3)
    scores = (1.0 / (1.0 + np.exp(-reference["discount"].to_numpy())), 1.0 / (1.0 + np.exp(-current["discount"])))
    return build_drift_report(reference, current, DriftConfig(multivariate=False), *scores)


def count(con: duckdb.DuckDBPyConnection, table: str, partition: str) -> int:
    return con.execute(f"SELECT count(*) FROM {table} WHERE partition = ?", [partition]).fetchall()[0][0]


def test_report_round_trip_in_a_duckdb_file(tmp_path, report: DriftReport) -> None:
    path = tmp_path / "live.duckdb"
    with duckdb.connect(str(path)) as con:
        ensure_drift_tables(con)
        ensure_drift_tables(con)  # idempotent
        report_id = write_drift_report(con, report, partition="2025-03-02", reference_id="ref-v1",
                                       model_id="model-7", plot_path="data/reports/2025-03-02.png",
                                       created_at=CREATED)
    assert report_id == drift_report_id("2025-03-02", "ref-v1", "model-7")

    with duckdb.connect(str(path), read_only=True) as con:
        tables = {row[0] for row in con.execute("SELECT table_name FROM information_schema.tables").fetchall()}
        assert set(ANALYST_TABLES) <= tables
        row = con.execute(
            "SELECT report_id, reference_id, model_id, scope, severity, severity_level, affected_segments, "
            "drifted_features, flags, plot_path, summary_json, created_at FROM drift_reports"
        ).fetchall()
        assert len(row) == 1
        (rid, reference_id, model_id, scope, severity, level, segments, drifted, flags, plot, summary, created) = row[0]
        assert (rid, reference_id, model_id, scope) == (report_id, "ref-v1", "model-7", "local")
        assert severity == pytest.approx(report.severity) and level == report.severity_level
        assert segments == ["region=south"] and drifted[0] == "discount"
        assert flags == list(report.flags) and plot.endswith(".png") and created == CREATED
        assert json.loads(summary)["scope"] == "local"

        n_tests = len(list(report.all_results()))
        n_unseen = len(report.unseen_share) + sum(len(s.unseen_share) for s in report.segments if not s.skipped)
        assert count(con, "drift_feature_results", "2025-03-02") == n_tests + n_unseen
        south = con.execute(
            "SELECT test, effect_size_name, drifted, p_value_corrected >= p_value FROM drift_feature_results "
            "WHERE feature = 'discount' AND segment_column = 'region' AND segment_value = 'south'"
        ).fetchall()
        assert south == [("ks", "psi", True, True)]
        model_rows = con.execute(
            "SELECT feature FROM drift_feature_results WHERE kind = 'model' ORDER BY feature"
        ).fetchall()
        assert model_rows == [("model_score",), ("model_uncertainty",)]


def test_rewriting_a_partition_replaces_its_rows(tmp_path, report: DriftReport) -> None:
    with duckdb.connect(str(tmp_path / "live.duckdb")) as con:
        for partition in ("2025-03-01", "2025-03-02", "2025-03-02"):
            write_drift_report(con, report, partition=partition, reference_id="ref-v1", model_id=None)
        rows_per_partition = count(con, "drift_feature_results", "2025-03-01")
        assert count(con, "drift_reports", "2025-03-02") == 1
        assert count(con, "drift_feature_results", "2025-03-02") == rows_per_partition
        # A re-run against a re-baselined reference still leaves one report for the partition.
        write_drift_report(con, report, partition="2025-03-02", reference_id="ref-v2", model_id="model-8")
        assert con.execute("SELECT reference_id FROM drift_reports WHERE partition = '2025-03-02'").fetchall() == [
            ("ref-v2",)
        ]
        assert con.execute("SELECT count(*) FROM drift_reports").fetchall()[0][0] == 2


def test_failed_write_keeps_the_previous_rows(tmp_path, report: DriftReport) -> None:
    with duckdb.connect(str(tmp_path / "live.duckdb")) as con:
        write_drift_report(con, report, partition="2025-03-02", reference_id="ref-v1", model_id="m", created_at=CREATED)
        before = count(con, "drift_feature_results", "2025-03-02")
        # A result without a feature name violates NOT NULL after the report row was already replaced.
        broken_result = dataclasses.replace(report.feature_results[0], feature=None)
        broken = dataclasses.replace(report, feature_results=(broken_result, *report.feature_results[1:]))
        with pytest.raises(duckdb.ConstraintException):
            write_drift_report(con, broken, partition="2025-03-02", reference_id="ref-v9", model_id="m")
        assert count(con, "drift_feature_results", "2025-03-02") == before
        assert con.execute("SELECT reference_id, created_at FROM drift_reports").fetchall() == [("ref-v1", CREATED)]


def test_concept_and_complaint_results_round_trip_and_replace(tmp_path) -> None:
    rng = np.random.default_rng(0)
    scores = rng.random(1_000)
    labels = (rng.random(1_000) < scores).astype(int)
    degraded = detect_concept_drift(labels, scores, 1 - labels, scores, covariate_severity=0.05)
    too_few = detect_concept_drift(labels, scores, labels[:10], scores[:10])
    complaints = pd.DataFrame({"day": pd.date_range("2025-03-01", periods=8).date,
                               "orders": [5_000] * 8, "complaints": [20, 18, 22, 19, 21, 20, 23, 60]})
    alert = evaluate_complaint_rate(complaints, "2025-03-08")

    path = tmp_path / "live.duckdb"
    with duckdb.connect(str(path)) as con:
        for _ in range(2):
            write_concept_drift_result(con, degraded, partition="2025-03-08", reference_id="ref-v1", model_id="m")
            write_complaint_result(con, alert, partition="2025-03-08")
        write_concept_drift_result(con, too_few, partition="2025-03-09", reference_id="ref-v1", model_id="m")
    with duckdb.connect(str(path), read_only=True) as con:
        metrics = con.execute(
            "SELECT metric, degraded, verdict, beyond_covariate FROM concept_drift_results "
            "WHERE partition = '2025-03-08' ORDER BY metric"
        ).fetchall()
        assert metrics == [("auc", True, "degraded", True), ("error_rate", True, "degraded", True),
                           ("log_loss", True, "degraded", True)]
        assert con.execute(
            "SELECT metric, verdict FROM concept_drift_results WHERE partition = '2025-03-09'"
        ).fetchall() == [(None, "insufficient_labels")]
        assert con.execute("SELECT day, complaints, alert, status FROM complaint_results").fetchall() == [
            (dt.date(2025, 3, 8), 60, True, "alert")
        ]


def test_bad_partition_is_rejected(tmp_path, report: DriftReport) -> None:
    with duckdb.connect(str(tmp_path / "live.duckdb")) as con:
        with pytest.raises(ValueError, match="partition"):
            write_drift_report(con, report, partition="", reference_id="ref-v1", model_id=None)
        with pytest.raises(ValueError, match="reference_id"):
            write_drift_report(con, report, partition="2025-03-02", reference_id="", model_id=None)
