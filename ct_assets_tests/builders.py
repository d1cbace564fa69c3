"""Small hand-built landing frames and model inputs for tests that need exact control over every value."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import Any

import duckdb
import numpy as np
import pandas as pd

from ct_assets.core.data import schema
from ct_assets.core.data.features import build_features
from ct_assets.core.data.ingest import ingest_events, ingest_labels
from ct_assets.core.decision.policy import Evidence


def events_frame(day: str, n: int = 20, first_id: int = 1, seed: int = 0) -> pd.DataFrame:
    """``n`` valid orders on ``day`` with ids first_id..first_id+n-1."""
    rng = np.random.default_rng(seed)
    terms = list(schema.QUERY_TERMS)
    chosen = [terms[i] for i in rng.integers(0, len(terms), n)]
    return pd.DataFrame({
        schema.ID_COLUMN: np.arange(first_id, first_id + n, dtype="int64"),
        schema.TIME_COLUMN: pd.Timestamp(day) + pd.to_timedelta(rng.integers(0, 86_399, n), unit="s"),
        "region": rng.choice(schema.REGIONS, n),
        "channel": rng.choice(schema.CHANNELS, n),
        "query_term": chosen,
        "category": [schema.QUERY_TERMS[t] for t in chosen],
        "price": rng.uniform(5, 500, n).round(2),
        "discount": rng.uniform(0, 0.5, n).round(3),
        "quantity": rng.integers(1, 5, n),
        "account_age_days": rng.integers(0, 3000, n),
        "prior_chargebacks": rng.integers(0, 3, n),
        "sensor_motion": rng.normal(0, 1, n),
        "sensor_pressure": rng.normal(5, 1, n),
        "sensor_latency_ms": rng.uniform(20, 400, n),
        "sensor_signal": rng.normal(-60, 5, n),
        schema.GROUP_COLUMN: rng.choice(schema.PROTECTED_GROUPS, n),
    })


def random_model_inputs(rng: np.random.Generator, n_rows: int) -> pd.DataFrame:
    """``n_rows`` of the model's input columns: standard-normal numerics, categories consistent with the
    query term (draws in a fixed order, so a seeded ``rng`` gives the same frame)."""
    frame = pd.DataFrame({column: rng.normal(size=n_rows) for column in schema.FEATURE_NUMERIC})
    frame["region"] = rng.choice(schema.REGIONS, n_rows)
    frame["channel"] = rng.choice(schema.CHANNELS, n_rows)
    frame["query_term"] = rng.choice(list(schema.QUERY_TERMS), n_rows)
    frame["category"] = frame["query_term"].map(schema.QUERY_TERMS)
    return frame


def labels_frame(event_ids: list[int] | np.ndarray, labels: list[int] | np.ndarray, at: str) -> pd.DataFrame:
    return pd.DataFrame({schema.ID_COLUMN: np.asarray(event_ids, dtype="int64"),
                         schema.FRAUD_LABEL_COLUMN: np.asarray(labels, dtype="int64"),
                         "labelled_at": pd.Timestamp(at)})


def ingest_landed_days(con: duckdb.DuckDBPyConnection, landing_dir: Path, quarantine_dir: Path,
                       days: Iterable[str]) -> None:
    """Ingest each landed day's orders and labels and build its features, as the day assets do in order."""
    for day in days:
        ingest_events(con, landing_dir, quarantine_dir, day)
        ingest_labels(con, landing_dir, quarantine_dir, day)
        build_features(con, day)


def write_parquet(frame: pd.DataFrame, path: Path) -> Path:
    """Write ``frame`` as Parquet with DuckDB (so tests exercise the same reader as ingest)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with duckdb.connect() as con:
        con.register("frame", frame)
        con.execute(f"COPY frame TO '{path}' (FORMAT parquet)")
    return path


def quiet_evidence(**overrides: Any) -> Evidence:
    """Evidence of a healthy production model (no drift, labels and budget to spare), with ``overrides``."""
    values: dict[str, Any] = {
        "drift_scope": "none", "drift_severity_score": 0.0, "drift_severity_level": "none", "affected_segments": (),
        "drifted_features": (), "unseen_category_share": 0.0, "concept_drift_detected": False, "metric_drop": 0.0,
        "covariate_drift_small": True, "complaint_alert": False, "complaint_rate_ratio": 1.0,
        "new_labels_since_training": 1_000, "label_coverage_recent": 0.8, "labelled_rows_new_regime": 5_000,
        "production_model_age_days": 5.0, "fine_tunes_since_full_retrain": 0, "compute_budget_left": 3_000.0,
        "risk_tier": "low", "production_model_exists": True, "typical_batch_rows": 2_000}
    return Evidence(**{**values, **overrides})
