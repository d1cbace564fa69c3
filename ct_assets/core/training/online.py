"""Online mode: the production model learns in place from each newly labelled batch.

The seed's third option beside fine-tuning and retraining. Every update is a few bounded gradient
steps from the serving weights, stored and registered as its own version (``training_path =
"online"``, parent = the model it started from), and put into service at once. Because single
updates are not gated, the chain is judged on a schedule: every ``gate_every_updates`` updates the
newest version is compared with the *anchor* (the last version that passed its gates, or the
retrained/fine-tuned model the chain started from) on recent labelled holdout rows; when it lost
accuracy, fairness or calibration, production goes back to the anchor and an alert is raised.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import duckdb
import numpy as np

from ct_assets.core.common import parse_iso_day
from ct_assets.core.data import schema
from ct_assets.core.data.features import ensure_features_table, load_features
from ct_assets.core.data.ingest import ensure_ingest_tables
from ct_assets.core.ops.alerts import Notifier, raise_alert
from ct_assets.core.release.deployment import promote, restore
from ct_assets.core.release.gates import GateResult
from ct_assets.core.release.lineup import (
    GateSettings,
    HoldoutScores,
    blocking_failures,
    online_chain_gates,
    recorded_blocking_failures,
)
from ct_assets.core.release.registry import (
    ModelRecord,
    ensure_registry_tables,
    get_model,
    get_production,
    record_gate_results,
    register_candidate,
)
from ct_assets.core.training.artifacts import load_model, save_model
from ct_assets.core.training.candidates import code_version, split_train_holdout
from ct_assets.core.training.model import (
    TrainedModel,
    TrainingConfig,
    fine_tune,
    predict_proba,
)
from ct_assets.core.training.preprocessing import MODEL_INPUTS

if TYPE_CHECKING:
    import pandas as pd

ONLINE_ACTOR = "online"
OnlineStatus = Literal["updated", "skipped", "rolled_back"]


@dataclass(frozen=True)
class OnlineConfig:
    """Knobs of online mode (off by default: a team opts in per application).

    ``gate_every_updates``: the chain is gated after this many updates since its anchor.
    ``gate_window_days``: holdout rows of events from this many days up to the update day judge it.
    ``tolerance``: how much worse than the anchor (metric units) the chain may get before it is undone.
    """

    enabled: bool = False
    steps_per_batch: int = 20
    learning_rate: float = 2e-4
    gate_every_updates: int = 3
    min_batch_rows: int = 200
    gate_window_days: int = 7
    tolerance: float = 0.01

    def __post_init__(self) -> None:
        for name in ("steps_per_batch", "gate_every_updates", "min_batch_rows", "gate_window_days"):
            if int(getattr(self, name)) < 1:
                raise ValueError(f"online {name} must be >= 1, got {getattr(self, name)!r}")
        if not self.learning_rate > 0:
            raise ValueError(f"online learning_rate must be > 0, got {self.learning_rate!r}")
        if self.tolerance < 0:
            raise ValueError(f"online tolerance must be >= 0, got {self.tolerance!r}")


@dataclass(frozen=True)
class OnlineOutcome:
    """What one online step did; ``model_id`` is the serving model afterwards."""

    status: OnlineStatus
    model_id: str | None
    message: str
    updates_since_anchor: int = 0
    gate_results: tuple[GateResult, ...] = ()
    anchor_model_id: str | None = None


def online_update(base: TrainedModel, features: pd.DataFrame, labels: pd.Series | np.ndarray,
                  config: TrainingConfig, online: OnlineConfig) -> TrainedModel:
    """A few bounded gradient steps from ``base`` on one labelled batch (no replay: it is the stream).

    Example: ``new = online_update(prod, batch[MODEL_INPUTS], batch["is_fraud"], TrainingConfig(), OnlineConfig())``.
    """
    step_config = replace(config, fine_tune_max_steps=online.steps_per_batch,
                          fine_tune_learning_rate=online.learning_rate, replay_fraction=0.0)
    tuned = fine_tune(base, features, labels, None, None, step_config)
    return replace(tuned, training_path="online")


def newly_labelled_features(con: duckdb.DuckDBPyConnection, arrival_day: str) -> pd.DataFrame:
    """Feature rows of the events whose labels arrived on ``arrival_day``, with the label."""
    ensure_ingest_tables(con)
    ensure_features_table(con)
    return con.execute(
        "SELECT f.*, l.is_fraud FROM features f JOIN "
        "(SELECT event_id, any_value(is_fraud) AS is_fraud FROM labels WHERE arrival_day = CAST(? AS DATE) "
        " GROUP BY event_id) l USING (event_id) ORDER BY f.event_id",
        [arrival_day]).fetchdf()


def _gates_passed(record: ModelRecord) -> bool:
    results = record.gate_results or []
    return bool(results) and not recorded_blocking_failures(results)


def chain_anchor(con: duckdb.DuckDBPyConnection, record: ModelRecord) -> tuple[ModelRecord, int]:
    """The anchor of ``record``'s online chain and how many online updates lie between them.

    Walks back through online parents until a model that is not an online update, or an online
    version whose scheduled gates passed.
    """
    current, updates = record, 0
    while current.training_path == "online" and not (updates > 0 and _gates_passed(current)):
        parent = get_model(con, current.parent_model_id) if current.parent_model_id else None
        if parent is None:
            raise ValueError(f"online model {current.model_id} has no registered parent; its chain is broken")
        current, updates = parent, updates + 1
    return current, updates


def _scheduled_gates(con: duckdb.DuckDBPyConnection, models_dir: Path, day: str, model_id: str,
                     anchor: ModelRecord, online: OnlineConfig, settings: GateSettings) -> list[GateResult]:
    start = parse_iso_day(day) - timedelta(days=online.gate_window_days - 1)
    _, holdout = split_train_holdout(load_features(con, str(start), day, labelled_only=True))
    inputs = holdout[list(MODEL_INPUTS)]
    holdout_scores = HoldoutScores(holdout[schema.FRAUD_LABEL_COLUMN].to_numpy(),
                                   predict_proba(load_model(models_dir, model_id), inputs),
                                   predict_proba(load_model(models_dir, anchor.model_id), inputs),
                                   holdout[schema.GROUP_COLUMN].to_numpy())
    return online_chain_gates(holdout_scores, settings, online.tolerance,
                              scope=f"labelled holdout rows of {start}..{day} vs {anchor.model_id}")


def apply_online_update(con: duckdb.DuckDBPyConnection, models_dir: Path, day: str, config: TrainingConfig,
                        online: OnlineConfig, settings: GateSettings, notifier: Notifier) -> OnlineOutcome:
    """Update the serving model from the labels that arrived on ``day``; gate the chain when it is due.

    Skips (and says why) without a production model or with too few new labelled training rows.
    Holdout events are never trained on, so the scheduled gates judge on rows no version has seen.
    """
    ensure_registry_tables(con)
    production = get_production(con)
    if production is None:
        return OnlineOutcome("skipped", None, "no production model to update")
    applied = con.execute(
        "SELECT model_id FROM model_registry WHERE training_path = 'online' "
        "AND json_extract_string(metrics, '$.labels_arrival_day') = ?", [day]).fetchall()
    if applied:
        # A re-run of this day: its labels were learned once already (by the version named here).
        return OnlineOutcome("skipped", production.model_id, f"labels of {day} already applied by {applied[0][0]}")
    rows = newly_labelled_features(con, day)
    train, _ = split_train_holdout(rows)
    if len(train) < online.min_batch_rows or train[schema.FRAUD_LABEL_COLUMN].nunique() < 2:
        return OnlineOutcome("skipped", production.model_id,
                             f"{len(train)} new labelled training rows on {day} (need {online.min_batch_rows}, "
                             "both classes)")
    base = load_model(models_dir, production.model_id)
    model = online_update(base, train[list(MODEL_INPUTS)], train[schema.FRAUD_LABEL_COLUMN], config, online)
    window_start, window_end = str(train["day"].min())[:10], str(train["day"].max())[:10]
    metrics: dict[str, Any] = {"train_rows": len(train), "final_train_loss": model.final_train_loss,
                               "steps": model.n_steps, "labels_arrival_day": day}
    version = code_version()
    reason = f"{len(train)} labels arrived on {day}"
    stored = save_model(models_dir, model, {
        "data_window": {"start": window_start, "end": window_end}, "parent_model_id": production.model_id,
        "code_version": version, "metrics": metrics, "trigger": ONLINE_ACTOR, "trigger_reason": reason,
        "decision_id": None, "drift_report_id": None,
    })
    record = register_candidate(con, ModelRecord(
        model_id=stored.model_id, training_path="online", parent_model_id=production.model_id,
        trigger=ONLINE_ACTOR, trigger_reason=reason, data_window_start=parse_iso_day(window_start),
        data_window_end=parse_iso_day(window_end), n_train_rows=len(train), hyperparameters=model.config.to_dict(),
        metrics=metrics, wall_s=model.cost.wall_seconds, cpu_s=model.cost.cpu_seconds,
        energy_kwh=model.cost.energy_kwh, train_gflops=model.cost.train_gflops,
        co2_kg=model.cost.co2_kg, artifact_path=str(stored.path),
        weights_sha256=stored.weights_sha256, code_version=version,
    ))
    promote(con, record.model_id, actor=ONLINE_ACTOR, reason=f"online update: {reason}")
    anchor, updates = chain_anchor(con, record)
    if updates % online.gate_every_updates:
        return OnlineOutcome("updated", record.model_id, f"online update {updates} since {anchor.model_id}: {reason}",
                             updates, (), anchor.model_id)
    gates = _scheduled_gates(con, models_dir, day, record.model_id, anchor, online, settings)
    record_gate_results(con, record.model_id, gates)
    failed = blocking_failures(gates)
    if not failed:
        return OnlineOutcome("updated", record.model_id,
                             f"online chain of {updates} updates passed its scheduled gates", updates,
                             tuple(gates), anchor.model_id)
    why = "; ".join(f"{g.name}: {g.reason}" for g in failed)
    restore(con, anchor.model_id, actor=f"{ONLINE_ACTOR}-gates", reason=f"online chain degraded: {why}")
    raise_alert(con, "online_rollback", "error", anchor.model_id,
                f"online updates since {anchor.model_id} failed their scheduled gates; restored it: {why}",
                {"rejected_model_id": record.model_id, "updates": updates}, notifier)
    return OnlineOutcome("rolled_back", anchor.model_id, f"restored {anchor.model_id}: {why}", updates,
                         tuple(gates), anchor.model_id)
