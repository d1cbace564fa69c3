"""The decisions table in a real DuckDB file: idempotent ids, full round trip, outcomes."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import duckdb
import pytest

from ct_assets.core.decision.evidence import evidence_to_dict, gather_evidence
from ct_assets.core.decision.policy import Evidence, decide
from ct_assets.core.decision.policy_config import PolicyConfig
from ct_assets.core.decision.records import (
    decision_id_for,
    ensure_decision_tables,
    get_decision,
    list_decisions,
    record_decision,
    set_decision_outcome,
)

LOCAL_SHIFT = Evidence(
    drift_scope="local", drift_severity_score=0.45, drift_severity_level="medium",
    affected_segments=("region=south",), drifted_features=("discount",), unseen_category_share=0.0,
    concept_drift_detected=False, metric_drop=0.0, covariate_drift_small=False,
    complaint_alert=False, complaint_rate_ratio=1.0,
    new_labels_since_training=3_000, label_coverage_recent=0.7, labelled_rows_new_regime=3_000,
    production_model_age_days=12.0, fine_tunes_since_full_retrain=0,
    compute_budget_left=3_000.0, risk_tier="low", production_model_exists=True, typical_batch_rows=2_000,
    affected_regions=("south",), evidence_ids={"drift_report_id": "dr-42", "note:complaints": "none"},
)


@pytest.fixture()
def con(con: duckdb.DuckDBPyConnection) -> duckdb.DuckDBPyConnection:
    ensure_decision_tables(con)
    ensure_decision_tables(con)  # idempotent
    return con


def test_record_round_trips_the_decision_and_the_evidence(con: duckdb.DuckDBPyConnection,
                                                           config: PolicyConfig) -> None:
    decision = decide(LOCAL_SHIFT, config)
    record = record_decision(con, "2024-03-14", decision, LOCAL_SHIFT)

    assert record == get_decision(con, record.decision_id)
    assert str(record.day) == "2024-03-14" and record.outcome is None
    assert (record.action, record.wanted_action, record.requires_approval) == ("fine_tune", "fine_tune", False)
    assert record.reasons == decision.reasons and record.reasons[0].startswith("drift_scope: drift is local")
    assert record.fired_rules == ("drift_scope",)
    assert record.estimated_cost == config.cost.default_fine_tune_cost and record.cost_unit == config.cost.unit
    assert record.budget_left == pytest.approx(3_000.0 - config.cost.default_fine_tune_cost)
    assert record.policy_version == config.policy_version
    assert record.evidence == evidence_to_dict(LOCAL_SHIFT)
    assert record.evidence["affected_segments"] == ["region=south"]
    assert record.evidence_ids == {"drift_report_id": "dr-42", "note:complaints": "none"}


def test_re_recording_a_day_on_the_same_evidence_keeps_one_row_and_its_outcome(
        con: duckdb.DuckDBPyConnection, config: PolicyConfig) -> None:
    decision = decide(LOCAL_SHIFT, config)
    first = record_decision(con, "2024-03-14", decision, LOCAL_SHIFT)
    set_decision_outcome(con, first.decision_id, "m-0123456789ab")
    # An equal Evidence built anew (dict in a different order) is the same decision.
    rebuilt = dataclasses.replace(LOCAL_SHIFT, evidence_ids={"note:complaints": "none", "drift_report_id": "dr-42"})
    again = record_decision(con, "2024-03-14", decide(rebuilt, config), rebuilt)

    assert again.decision_id == first.decision_id == decision_id_for("2024-03-14", LOCAL_SHIFT, config.policy_version)
    assert con.execute("SELECT count(*) FROM decisions").fetchall() == [(1,)]
    assert again.outcome == "m-0123456789ab" and again.decided_at == first.decided_at


def test_other_evidence_day_or_policy_is_another_decision(con: duckdb.DuckDBPyConnection,
                                                          config: PolicyConfig) -> None:
    more_labels = dataclasses.replace(LOCAL_SHIFT, labelled_rows_new_regime=3_001)
    ids = {
        decision_id_for("2024-03-14", LOCAL_SHIFT, config.policy_version),
        decision_id_for("2024-03-14", more_labels, config.policy_version),
        decision_id_for("2024-03-15", LOCAL_SHIFT, config.policy_version),
        decision_id_for("2024-03-14", LOCAL_SHIFT, "2+0000000000"),
    }
    assert len(ids) == 4 and all(i.startswith("dec-2024-03-1") for i in ids)

    record_decision(con, "2024-03-14", decide(LOCAL_SHIFT, config), LOCAL_SHIFT)
    record_decision(con, "2024-03-14", decide(more_labels, config), more_labels)
    assert con.execute("SELECT count(*) FROM decisions WHERE day = DATE '2024-03-14'").fetchall() == [(2,)]


def test_list_decisions_is_ordered_and_filters_by_day(con: duckdb.DuckDBPyConnection, config: PolicyConfig) -> None:
    stable = dataclasses.replace(LOCAL_SHIFT, drift_scope="none", drift_severity_score=0.0,
                                 drift_severity_level="none", affected_segments=(), drifted_features=(),
                                 affected_regions=())
    for day, evidence in (("2024-03-16", LOCAL_SHIFT), ("2024-03-14", stable), ("2024-03-15", stable)):
        record_decision(con, day, decide(evidence, config), evidence)

    assert [str(r.day) for r in list_decisions(con)] == ["2024-03-14", "2024-03-15", "2024-03-16"]
    since = list_decisions(con, since_day="2024-03-15")
    assert [(str(r.day), r.action) for r in since] == [("2024-03-15", "none"), ("2024-03-16", "fine_tune")]


def test_outcome_and_input_errors_are_clear(con: duckdb.DuckDBPyConnection, config: PolicyConfig) -> None:
    record = record_decision(con, "2024-03-14", decide(LOCAL_SHIFT, config), LOCAL_SHIFT)
    assert set_decision_outcome(con, record.decision_id, "no action").outcome == "no action"
    with pytest.raises(ValueError, match="unknown decision"):
        set_decision_outcome(con, "dec-2024-03-14-000000000000", "m-1")
    with pytest.raises(ValueError, match="outcome must be a non-empty string"):
        set_decision_outcome(con, record.decision_id, " ")
    with pytest.raises(ValueError, match="ISO date"):
        record_decision(con, "14/03/2024", decide(LOCAL_SHIFT, config), LOCAL_SHIFT)
    with pytest.raises(ValueError, match="must be a Decision"):
        record_decision(con, "2024-03-14", "retrain", LOCAL_SHIFT)  # type: ignore[arg-type]


def test_readers_work_on_a_read_only_database_without_the_table(tmp_path: Path) -> None:
    path = tmp_path / "empty.duckdb"
    duckdb.connect(str(path)).close()
    with duckdb.connect(str(path), read_only=True) as con:
        assert get_decision(con, "dec-2024-03-14-000000000000") is None
        assert list_decisions(con) == []


def test_gathered_evidence_on_an_empty_warehouse_records_a_bootstrap_wait(tmp_path: Path,
                                                                           config: PolicyConfig) -> None:
    with duckdb.connect(str(tmp_path / "ct.duckdb")) as con:
        evidence = gather_evidence(con, "2024-03-14", config)
        record = record_decision(con, "2024-03-14", decide(evidence, config), evidence)
        # Recording twice from freshly gathered evidence is still one decision.
        assert record_decision(con, "2024-03-14", decide(gather_evidence(con, "2024-03-14", config), config),
                               gather_evidence(con, "2024-03-14", config)).decision_id == record.decision_id
    assert record.action == "none" and record.fired_rules == ("bootstrap", "labels_scarce")
    assert "note:drift" in record.evidence_ids and "drift_report_id" not in record.evidence_ids
