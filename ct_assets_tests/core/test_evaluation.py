"""Candidate evaluation on a real DuckDB warehouse, and table tests of the gate line-up it shares with
online mode and the backtest."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace
from datetime import date
from pathlib import Path

import duckdb
import numpy as np
import pandas as pd
import pytest

from ct_assets.core.data import schema
from ct_assets.core.data.features import load_features
from ct_assets.core.decision.policy import decide
from ct_assets.core.decision.policy_config import load_policy_config
from ct_assets.core.decision.records import record_decision
from ct_assets.core.monitoring.store import ensure_drift_tables
from ct_assets.core.release import lineup
from ct_assets.core.release.deployment import promote
from ct_assets.core.release.evaluation import evaluate_candidate
from ct_assets.core.release.gates import GateResult
from ct_assets.core.release.registry import (
    ModelRecord,
    ensure_registry_tables,
    get_model,
    register_candidate,
)
from ct_assets.core.training.artifacts import save_model
from ct_assets.core.training.model import TrainedModel, TrainingConfig, train_from_scratch
from ct_assets.core.training.preprocessing import MODEL_INPUTS
from ct_assets.simulation.config import SimulatorConfig
from ct_assets.simulation.landing import write_history
from ct_assets.simulation.scenarios import parse_timeline
from ct_assets_tests.builders import ingest_landed_days, quiet_evidence

DAYS = [f"2025-01-{i:02d}" for i in range(1, 6)]
WINDOW = (DAYS[0], DAYS[3])
TRAINING = TrainingConfig(hidden_sizes=(16,), epochs=2, seed=3)
SETTINGS = lineup.GateSettings(n_boot=50)
LINEUP = ["holdout", "non_regression", "long_term_holdout", "fairness", "leakage", "calibration",
          "selection_bias"]
EVIDENCE = quiet_evidence()


# --- evaluate_candidate on a warehouse ----------------------------------------------------------------

@pytest.fixture(scope="module")
def landed(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("evaluation")
    write_history(root / "landing", root / "state", SimulatorConfig(rows_per_day=1500,
                                                                     timeline=parse_timeline("stable@0")), len(DAYS))
    return root


@pytest.fixture(scope="module")
def models(landed: Path) -> dict[str, TrainedModel]:
    """A model that learned the data and one that learned shuffled labels (no better than chance)."""
    with duckdb.connect(str(landed / "train.duckdb")) as con:
        ingest_landed_days(con, landed / "landing", landed / "q", DAYS)
        frame = load_features(con, *WINDOW, labelled_only=True)
    inputs, labels = frame[list(MODEL_INPUTS)], frame[schema.FRAUD_LABEL_COLUMN]
    shuffled = labels.sample(frac=1.0, random_state=0).to_numpy()
    return {"good": train_from_scratch(inputs, labels, TRAINING),
            "chance": train_from_scratch(inputs, shuffled, TRAINING)}


@pytest.fixture
def warehouse(landed: Path, tmp_path: Path) -> Iterator[tuple[duckdb.DuckDBPyConnection, Path]]:
    with duckdb.connect(str(tmp_path / "w.duckdb")) as con:
        ingest_landed_days(con, landed / "landing", tmp_path / "q", DAYS)
        ensure_registry_tables(con)
        yield con, tmp_path / "models"


def _register(con: duckdb.DuckDBPyConnection, models_dir: Path, model: TrainedModel, **fields: object) -> str:
    stored = save_model(models_dir, model, {})
    fields = {"training_path": "retrain", "data_window_start": date.fromisoformat(WINDOW[0]),
              "data_window_end": date.fromisoformat(WINDOW[1]), **fields}
    register_candidate(con, ModelRecord(model_id=stored.model_id, **fields))  # type: ignore[arg-type]
    return stored.model_id


def test_first_candidate_passes_every_gate_and_they_are_recorded(warehouse, models):
    con, models_dir = warehouse
    model_id = _register(con, models_dir, models["good"])
    results = evaluate_candidate(con, models_dir, model_id, SETTINGS)
    assert [g.name for g in results] == LINEUP
    assert lineup.blocking_failures(results) == []
    record = get_model(con, model_id)
    assert record is not None and record.status == "staging"
    assert [g["name"] for g in record.gate_results] == LINEUP
    assert "no production model" in results[0].reason


def test_a_candidate_no_better_than_chance_is_rejected(warehouse, models):
    con, models_dir = warehouse
    production = _register(con, models_dir, models["good"])
    evaluate_candidate(con, models_dir, production, SETTINGS)  # records its leakage AUCs
    promote(con, production, actor="test", reason="bootstrap")
    candidate = _register(con, models_dir, models["chance"], parent_model_id=production)
    results = evaluate_candidate(con, models_dir, candidate, SETTINGS)
    failed = [g.name for g in lineup.blocking_failures(results)]
    assert "holdout" in failed
    record = get_model(con, candidate)
    assert record is not None and record.status == "rejected"
    assert "holdout:" in (record.status_reason or "")
    # The leakage AUCs production's own gate measured are the reference of the candidate's leakage gate.
    leakage = next(g for g in results if g.name == "leakage")
    production_record = get_model(con, production)
    assert production_record is not None
    recorded = next(g for g in production_record.gate_results if g["name"] == "leakage")
    assert leakage.threshold["reference_auc"] == pytest.approx(recorded["metrics"]["single_feature_auc"])


def test_a_local_fine_tune_is_judged_inside_and_outside_its_shift(warehouse, models):
    con, models_dir = warehouse
    production = _register(con, models_dir, models["chance"])
    promote(con, production, actor="test", reason="bootstrap")
    evidence = replace(EVIDENCE, drift_scope="local", affected_segments=("region=south",))
    decision = record_decision(con, DAYS[3], decide(evidence, load_policy_config()), evidence)
    candidate = _register(con, models_dir, models["good"], training_path="fine_tune", parent_model_id=production,
                          decision_id=decision.decision_id)
    holdout, non_regression = evaluate_candidate(con, models_dir, candidate, SETTINGS)[:2]
    assert holdout.passed and holdout.reason.startswith("on region=south: ")
    assert non_regression.threshold["scope"] == "rows outside region=south"
    assert non_regression.passed and non_regression.metrics["n"] > lineup.MIN_LOCAL_ROWS


def test_a_global_decision_judges_every_row(warehouse, models):
    con, models_dir = warehouse
    decision = record_decision(con, DAYS[3], decide(EVIDENCE, load_policy_config()), EVIDENCE)
    candidate = _register(con, models_dir, models["good"], training_path="fine_tune",
                          decision_id=decision.decision_id)
    holdout, non_regression = evaluate_candidate(con, models_dir, candidate, SETTINGS)[:2]
    assert not holdout.reason.startswith("on region")
    assert non_regression.passed and "not a local fine-tune" in non_regression.reason


def test_the_holdout_judges_the_rows_since_the_shift_started(warehouse, models):
    """Live: the shift ongoing on the decision's day (drift reports of days 3 and 4) picks the rows."""
    con, models_dir = warehouse
    ensure_drift_tables(con)
    for partition, severity in [(DAYS[1], 0.0), (DAYS[2], 0.5), (DAYS[3], 0.5)]:
        con.execute("INSERT INTO drift_reports (report_id, partition, reference_id, model_id, severity, "
                    "severity_level, scope, drifted_features, affected_segments, max_unseen_share, created_at) "
                    "VALUES (?, ?, 'ref', 'm', ?, 'medium', ?, [], [], 0.0, now())",
                    [f"dr-{partition}", partition, severity, "global" if severity else "none"])
    production = _register(con, models_dir, models["chance"])
    promote(con, production, actor="test", reason="bootstrap")
    decision = record_decision(con, DAYS[3], decide(EVIDENCE, load_policy_config()), EVIDENCE)
    candidate = _register(con, models_dir, models["good"], parent_model_id=production,
                          decision_id=decision.decision_id)
    results = evaluate_candidate(con, models_dir, candidate, SETTINGS, load_policy_config())
    holdout, long_term = results[0], results[2]
    assert holdout.passed and f"holdout rows of days {DAYS[2]}..{DAYS[3]} (since the shift started" in holdout.reason
    assert long_term.name == "long_term_holdout" and long_term.passed and long_term.severity == "warning"
    without_policy = evaluate_candidate(con, models_dir, candidate, SETTINGS)[0]
    assert "no shift detected" in without_policy.reason


def test_unknown_or_windowless_models_cannot_be_evaluated(warehouse, models):
    con, models_dir = warehouse
    with pytest.raises(ValueError, match="unknown model id"):
        evaluate_candidate(con, models_dir, "nope", SETTINGS)
    windowless = _register(con, models_dir, models["good"], data_window_start=None, data_window_end=None)
    with pytest.raises(ValueError, match="no data window"):
        evaluate_candidate(con, models_dir, windowless, SETTINGS)


# --- the line-up as a pure function ---------------------------------------------------------------------

N = 4000
RNG = np.random.default_rng(7)
RISK = RNG.normal(size=N)
Y = (RNG.random(N) < 1.0 / (1.0 + np.exp(-2.0 * RISK))).astype(np.int64)
GROUPS = np.where(np.arange(N) % 2 == 0, "g1", "g2")
NOISE = RNG.normal(scale=1.5, size=N)


def calibrated(signal: np.ndarray) -> np.ndarray:
    """Scores ranked by ``signal`` and calibrated on these rows (the label rate of its 40 quantile bins),
    so the calibration gate sees an expected calibration error of zero."""
    bins = pd.qcut(signal, 40, labels=False)
    return pd.Series(Y).groupby(bins).transform("mean").clip(0.01, 0.99).to_numpy()


SHARP = calibrated(RISK)
BLUNT = calibrated(RISK + NOISE)  # the risk seen through noise
UNFAIR = calibrated(np.where(GROUPS == "g1", RISK, RISK + NOISE))  # sharp on g1 only: the group gap widens
OVERCONFIDENT = 1.0 / (1.0 + np.exp(-3.0 * np.log(SHARP / (1.0 - SHARP))))  # SHARP's ranking, pushed to 0 and 1
FEATURES = pd.DataFrame({"x": RNG.normal(size=N), "leak": Y + 0.01 * RNG.normal(size=N)})


def _scores(candidate: np.ndarray, production: np.ndarray | None = BLUNT,
            groups: np.ndarray | None = GROUPS) -> lineup.HoldoutScores:
    return lineup.HoldoutScores(Y, candidate, production, groups)


def _outcome(results: list[GateResult]) -> dict[str, bool]:
    return {g.name: g.passed for g in results}


@pytest.mark.parametrize(("case", "candidate", "production", "failing"), [
    ("sharper beats blunt", SHARP, BLUNT, set()),
    ("blunt does not beat sharp, and every group regresses", BLUNT, SHARP, {"holdout", "fairness"}),
    ("equal models: not worse, so non-inferior", SHARP, SHARP, set()),
    ("one group left behind", UNFAIR, BLUNT, {"fairness"}),
    ("overconfident", OVERCONFIDENT, BLUNT, {"calibration"}),
    ("no production model: bootstrap", BLUNT, None, set()),
])
def test_candidate_gates_table(case, candidate, production, failing):
    results = lineup.candidate_gates(_scores(candidate, production), SETTINGS)
    assert [g.name for g in results] == ["holdout", "non_regression", "fairness", "calibration"], case
    assert {name for name, passed in _outcome(results).items() if not passed} == failing, case
    assert {g.name for g in lineup.blocking_failures(results)} == failing, case


SUPERIORITY = replace(SETTINGS, holdout_mode="superiority")


@pytest.mark.parametrize(("case", "settings", "candidate", "passes", "test"), [
    ("non-inferiority: equal passes", SETTINGS, SHARP, True, "non_inferiority"),
    ("superiority: equal shows no gain", SUPERIORITY, SHARP, False, "superiority"),
    ("superiority: 1 % better with a clear interval", SUPERIORITY, calibrated(RISK + 0.2 * NOISE), True,
     "superiority"),
])
def test_holdout_mode(case, settings, candidate, passes, test):
    production = calibrated(RISK + 0.5 * NOISE) if "better" in case else SHARP
    holdout = lineup.candidate_gates(_scores(candidate, production, groups=None), settings)[0]
    assert holdout.passed is passes and holdout.threshold["mode"] == test, case
    assert holdout.reason.startswith(f"on {N} holdout rows"), case


def test_gate_settings_refuse_an_unknown_holdout_mode():
    with pytest.raises(ValueError, match="holdout_mode must be one of"):
        lineup.GateSettings(holdout_mode="better")


BATCHES = np.repeat(np.arange(10), 50)
ALTERNATING = np.tile([0, 1], 250)
ONE_CLASS_AT_THE_END = np.where(BATCHES >= 8, 1, ALTERNATING)


@pytest.mark.parametrize(("case", "labels", "shift_start", "min_rows", "first", "since_shift", "why"), [
    ("since the shift start", ALTERNATING, 6, 100, 6, True, "since the shift started at 6"),
    ("a young shift is widened to the minimum rows", ALTERNATING, 9, 100, 8, True,
     "since the shift started at 9, widened back to 8 to reach 100 rows with both classes"),
    ("exactly the minimum: not widened", ALTERNATING, 8, 100, 8, True, "since the shift started at 8"),
    ("no shift: the newest periods", ALTERNATING, None, 100, 7, False, "the newest 3 periods: no shift detected"),
    ("a shift without labelled rows yet: the newest periods", ALTERNATING, 12, 100, 7, False,
     "the newest 3 periods: no shift detected"),
    ("one class since the shift: widened to both", ONE_CLASS_AT_THE_END, 8, 100, 7, True,
     "since the shift started at 8, widened back to 7 to reach 100 rows with both classes"),
    ("never enough: every row", ALTERNATING, 9, 10_000, 0, True,
     "since the shift started at 9, widened back to 0 to reach 10000 rows with both classes"),
])
def test_newest_holdout_rows_table(case, labels, shift_start, min_rows, first, since_shift, why):
    chosen = lineup.newest_holdout_rows(BATCHES, labels, shift_start, lineup.GateSettings(min_holdout_rows=min_rows))
    assert (chosen.first, chosen.last, chosen.since_shift, chosen.why) == (first, 9, since_shift, why), case
    assert np.array_equal(chosen.rows, BATCHES >= first), case


def test_spread_evenly_keeps_the_whole_history():
    kept = lineup.spread_evenly(1000, 10)
    assert len(kept) == 10 and kept[0] == 0 and kept[-1] == 999
    assert lineup.spread_evenly(5, 10).tolist() == [0, 1, 2, 3, 4]


@pytest.mark.parametrize(("case", "long_term", "shift_detected", "passed", "severity"), [
    ("holds up over the history", SHARP, False, True, "error"),
    ("regresses on the long run: blocks", BLUNT, False, False, "error"),
    ("regresses while adapting to a detected shift: warns", BLUNT, True, False, "warning"),
])
def test_long_term_holdout_gate(case, long_term, shift_detected, passed, severity):
    scores = lineup.HoldoutScores(Y, long_term, SHARP, None, "long-term holdout rows")
    results = lineup.candidate_gates(_scores(SHARP, SHARP, groups=None), SETTINGS, long_term=scores,
                                     shift_detected=shift_detected)
    gate = results[2]
    assert (gate.name, gate.passed, gate.severity) == ("long_term_holdout", passed, severity), case
    assert gate.metrics["margin"] >= SETTINGS.long_term_tolerance
    assert ("long_term_holdout" in {g.name for g in lineup.blocking_failures(results)}) is (severity == "error"
                                                                                            and not passed), case
    if shift_detected:
        assert "reported, not blocking" in gate.reason


def test_long_term_holdout_with_one_class_waits():
    one_class = lineup.HoldoutScores(np.ones(10, dtype=np.int64), np.full(10, 0.5), np.full(10, 0.5), None)
    gate = lineup.candidate_gates(_scores(SHARP, groups=None), SETTINGS, long_term=one_class)[2]
    assert gate.passed and "too few long-term holdout rows" in gate.reason


@pytest.mark.parametrize(("shifted", "passes"), [(None, False), (("x",), False), (("leak",), True)])
def test_leakage_jump_in_the_lineup_spares_a_shifted_feature(shifted, passes):
    partial = pd.DataFrame({"leak": Y + RNG.normal(scale=0.8, size=N)})  # AUC ~0.8: under the ceiling
    training = lineup.TrainingRows(partial, Y, np.zeros(N), ("leak",), {"leak": 0.5}, shifted)
    leakage = lineup.candidate_gates(_scores(SHARP, groups=None), SETTINGS, training=training)[2]
    assert leakage.name == "leakage" and leakage.passed is passes


@pytest.mark.parametrize(("column", "passes"), [("x", True), ("leak", False)])
def test_leakage_gate_in_the_lineup(column, passes):
    training = lineup.TrainingRows(FEATURES, Y, np.zeros(N), (column,), None)
    results = lineup.candidate_gates(_scores(SHARP), SETTINGS, training=training)
    assert [g.name for g in results] == ["holdout", "non_regression", "fairness", "leakage", "calibration"]
    assert _outcome(results)["leakage"] is passes


def test_gates_without_their_inputs_are_left_out():
    results = lineup.candidate_gates(_scores(SHARP, groups=None), SETTINGS,
                                     training=lineup.TrainingRows(FEATURES, Y, np.zeros(N), (), None))
    assert [g.name for g in results] == ["holdout", "non_regression", "calibration"]


def test_selection_bias_warns_without_blocking():
    # Labels exist only for the orders production approved: a feedback loop.
    coverage = lineup.LabelCoverage(labelled=SHARP <= 0.5, production_scores=SHARP)
    results = lineup.candidate_gates(_scores(SHARP), SETTINGS, label_coverage=coverage)
    bias = results[-1]
    assert bias.name == "selection_bias" and not bias.passed and bias.severity == "warning"
    assert lineup.blocking_failures(results) == []


def test_local_shift_judges_inside_with_holdout_and_outside_with_non_regression():
    inside = np.arange(N) < N // 3
    # Better than production inside the shift, worse outside it.
    candidate = calibrated(np.where(inside, RISK, RISK + 3.0 * NOISE))
    results = lineup.candidate_gates(_scores(candidate, groups=None), SETTINGS,
                                     local_shift=lineup.LocalShift(inside, "seg=a"))
    holdout, non_regression = results[:2]
    assert holdout.passed and holdout.metrics["n"] == inside.sum() and holdout.reason.startswith("on seg=a: ")
    assert not non_regression.passed and non_regression.metrics["n"] == (~inside).sum()
    assert non_regression.threshold["scope"] == "rows outside seg=a"
    assert [g.name for g in lineup.blocking_failures(results)] == ["non_regression"]


def test_guarded_lineup_fails_a_gate_that_cannot_be_evaluated():
    tiny_groups = np.array([f"g{i}" for i in range(N)])  # every group below the minimum size
    with pytest.raises(ValueError, match="no group has enough rows"):
        lineup.candidate_gates(_scores(SHARP, groups=tiny_groups), SETTINGS)
    fairness = lineup.candidate_gates(_scores(SHARP, groups=tiny_groups), SETTINGS, guarded=True)[2]
    assert fairness.name == "fairness" and not fairness.passed
    assert fairness.reason.startswith("could not be evaluated: ")


def test_online_chain_gates():
    results = lineup.online_chain_gates(_scores(BLUNT, SHARP), SETTINGS, tolerance=0.01, scope="recent rows")
    assert [g.name for g in results] == ["non_regression", "fairness", "calibration"]
    assert [g.name for g in lineup.blocking_failures(results)] == ["non_regression", "fairness"]
    assert lineup.online_chain_gates(_scores(SHARP, BLUNT), SETTINGS, 0.01, "recent rows")[0].passed
    one_class = lineup.HoldoutScores(np.ones(10, dtype=np.int64), np.full(10, 0.5), np.full(10, 0.5), None)
    (waiting,) = lineup.online_chain_gates(one_class, SETTINGS, 0.01, "recent rows")
    assert waiting.passed and "too few labelled holdout rows" in waiting.reason


def _segments(n_inside: int, n_outside: int, inside: object = "south", outside: object = "north") -> pd.DataFrame:
    return pd.DataFrame({"region": [inside] * n_inside + [outside] * n_outside})


@pytest.mark.parametrize(("case", "holdout", "path", "scope", "segments", "where"), [
    ("local fine-tune", _segments(150, 300), "fine_tune", "local", ["region=south"], "region=south"),
    ("values sorted and joined", _segments(150, 300), "fine_tune", "local", ["region=south", "region=east"],
     "region=east|south"),
    ("segment values compared as text", _segments(150, 300, 3, 4), "fine_tune", "local", ["region=3"], "region=3"),
    ("a retrain judges every row", _segments(150, 300), "retrain", "local", ["region=south"], None),
    ("a global shift", _segments(150, 300), "fine_tune", "global", ["region=south"], None),
    ("two segment columns", _segments(150, 300), "fine_tune", "local", ["region=south", "category=home"], None),
    ("column not in the holdout", _segments(150, 300), "fine_tune", "local", ["channel=app"], None),
    ("no segment", _segments(150, 300), "fine_tune", "local", ["south"], None),
    ("too few rows inside", _segments(lineup.MIN_LOCAL_ROWS - 1, 300), "fine_tune", "local", ["region=south"], None),
    ("too few rows outside", _segments(300, lineup.MIN_LOCAL_ROWS - 1), "fine_tune", "local", ["region=south"], None),
    ("just enough on both sides", _segments(lineup.MIN_LOCAL_ROWS, lineup.MIN_LOCAL_ROWS), "fine_tune", "local",
     ["region=south"], "region=south"),
])
def test_select_local_shift_table(case, holdout, path, scope, segments, where):
    shift = lineup.select_local_shift(holdout, path, scope, segments)
    assert (None if shift is None else shift.where) == where, case
    if shift is not None:
        assert shift.rows.sum() == (holdout["region"].astype(str).isin(["south", "east", "3"])).sum()


def test_blocking_failures_and_their_recorded_form():
    results = [GateResult("holdout", True, "error"), GateResult("fairness", False, "error"),
               GateResult("selection_bias", False, "warning"), GateResult("calibration", False, "error")]
    assert [g.name for g in lineup.blocking_failures(results)] == ["fairness", "calibration"]
    assert lineup.recorded_blocking_failures([g.to_dict() for g in results]) == ["fairness", "calibration"]
    assert lineup.blocking_failures([]) == [] and lineup.recorded_blocking_failures([]) == []


def test_long_term_holdout_too_small_to_resolve_the_largest_margin_only_warns():
    rng = np.random.default_rng(4)
    y = np.tile([0, 1], 15)  # 30 rows: the bootstrap SE of an AUC difference is far above the 0.05 cap
    production = np.clip(y * 0.3 + rng.uniform(0, 0.7, size=30), 0, 1)
    candidate = rng.uniform(0, 1, size=30)
    scores = lineup.HoldoutScores(y, candidate, production, None, "long-term holdout rows")
    gate = lineup.candidate_gates(_scores(SHARP, groups=None), SETTINGS, long_term=scores)[2]
    assert (gate.name, gate.passed, gate.severity) == ("long_term_holdout", False, "warning")
    assert gate.metrics["margin"] == SETTINGS.non_inferiority_max_margin
    assert "too few long-term rows to resolve the margin" in gate.reason
