"""The live warehouse's labelled history as a backtest stream: the `features` table joined with the
labels that have arrived, one batch per day, the live model's inputs as the stream's features."""

from __future__ import annotations

from dataclasses import replace

import duckdb

from ct_assets.core.backtest.adapter import stream_from_table
from ct_assets.core.backtest.config import BacktestConfig
from ct_assets.core.backtest.service import stream_config
from ct_assets.core.backtest.stream import Stream
from ct_assets.core.data import schema
from ct_assets.core.data.features import ensure_features_table, load_features
from ct_assets.core.monitoring.drift.types import DriftConfig

LIVE_STREAM_NAME = "live_history"


def live_history_stream(con: duckdb.DuckDBPyConnection, seed: int = 0) -> tuple[Stream, BacktestConfig]:
    """Every labelled row of the warehouse as a daily stream, and the settings to replay it under ``seed``.

    Raises ValueError when the warehouse has no labelled features yet or too few days to replay.
    """
    ensure_features_table(con)
    first, last = con.execute("SELECT min(day), max(day) FROM features").fetchone()
    if first is None:
        raise ValueError("the warehouse has no features yet: nothing to calibrate on")
    table = load_features(con, str(first), str(last), labelled_only=True)
    stream = stream_from_table(
        table, name=LIVE_STREAM_NAME, timestamp_column=schema.TIME_COLUMN, label_column=schema.FRAUD_LABEL_COLUMN,
        numeric_features=schema.FEATURE_NUMERIC, categorical_features=schema.FEATURE_CATEGORICAL,
        segment_columns=tuple(c for c in schema.SEGMENT_COLUMNS if c != schema.GROUP_COLUMN),
        protected_column=schema.GROUP_COLUMN, batch_by="day")
    # A daily batch is all-weekday or all-weekend: the live drift report skips is_weekend, so does this.
    config = replace(stream_config(stream, seed), drift_excluded_features=DriftConfig().excluded_features)
    return stream, config
