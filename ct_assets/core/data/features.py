"""Feature engineering as DuckDB SQL over ``raw_events``, one day at a time.

Per-row transforms (log scales, time of day) plus one window feature: an order's price relative
to its region's average price over the 7 days ending on the order's day, so a regional price
shift shows up as a regional effect rather than a global one.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import duckdb

from ct_assets.core.data import schema
from ct_assets.core.data.ingest import ensure_ingest_tables

if TYPE_CHECKING:
    import pandas as pd

# Copied into the analyst snapshot (core/ops/snapshots.py).
ANALYST_TABLES: tuple[str, ...] = ("features",)
FEATURES_DDL = """CREATE TABLE IF NOT EXISTS features (
    day DATE NOT NULL, event_id BIGINT, event_ts TIMESTAMP, protected_group VARCHAR,
    region VARCHAR, channel VARCHAR, query_term VARCHAR, category VARCHAR,
    log_price DOUBLE, discount DOUBLE, quantity DOUBLE, log_account_age DOUBLE, prior_chargebacks DOUBLE,
    sensor_motion DOUBLE, sensor_pressure DOUBLE, sensor_latency_ms DOUBLE, sensor_signal DOUBLE,
    hour_of_day DOUBLE, is_weekend DOUBLE, price_vs_region_7d DOUBLE)"""

FEATURES_SELECT = """
WITH region_price AS (
    SELECT region, avg(price) AS avg_price_7d
    FROM raw_events
    WHERE day BETWEEN CAST(? AS DATE) - INTERVAL 6 DAY AND CAST(? AS DATE)
    GROUP BY region
)
SELECT e.day, e.event_id, e.event_ts, e.protected_group,
       e.region, e.channel, e.query_term, e.category,
       ln(e.price) AS log_price,
       e.discount,
       CAST(e.quantity AS DOUBLE) AS quantity,
       ln(1 + e.account_age_days) AS log_account_age,
       CAST(e.prior_chargebacks AS DOUBLE) AS prior_chargebacks,
       e.sensor_motion, e.sensor_pressure, e.sensor_latency_ms, e.sensor_signal,
       CAST(hour(e.event_ts) AS DOUBLE) AS hour_of_day,
       CASE WHEN dayofweek(e.event_ts) IN (0, 6) THEN 1.0 ELSE 0.0 END AS is_weekend,
       e.price / r.avg_price_7d AS price_vs_region_7d
FROM raw_events e JOIN region_price r USING (region)
WHERE e.day = CAST(? AS DATE)
"""

FEATURE_COLUMNS: tuple[str, ...] = (
    "day", schema.ID_COLUMN, schema.TIME_COLUMN, schema.GROUP_COLUMN,
    *schema.FEATURE_CATEGORICAL, *schema.FEATURE_NUMERIC,
)


def ensure_features_table(con: duckdb.DuckDBPyConnection) -> None:
    con.execute(FEATURES_DDL)


def build_features(con: duckdb.DuckDBPyConnection, day: str) -> int:
    """Recompute the ``features`` rows of ``day`` atomically; returns the row count."""
    ensure_features_table(con)
    con.execute("BEGIN TRANSACTION")
    try:
        con.execute("DELETE FROM features WHERE day = CAST(? AS DATE)", [day])
        con.execute(f"INSERT INTO features ({', '.join(FEATURE_COLUMNS)}) {FEATURES_SELECT}", [day, day, day])
        count = con.execute("SELECT count(*) FROM features WHERE day = CAST(? AS DATE)", [day]).fetchall()[0][0]
        con.execute("COMMIT")
    except BaseException:
        con.execute("ROLLBACK")
        raise
    return int(count)


def load_features(con: duckdb.DuckDBPyConnection, start_day: str, end_day: str,
                  labelled_only: bool = False) -> pd.DataFrame:
    """Features of the days in [start_day, end_day], with the label when known.

    ``labelled_only`` keeps the rows whose label has arrived (for training and evaluation).
    """
    ensure_ingest_tables(con)
    ensure_features_table(con)
    join = "JOIN" if labelled_only else "LEFT JOIN"
    return con.execute(
        f"SELECT f.*, l.is_fraud FROM features f {join} "
        "(SELECT event_id, any_value(is_fraud) AS is_fraud FROM labels GROUP BY event_id) l USING (event_id) "
        "WHERE f.day BETWEEN CAST(? AS DATE) AND CAST(? AS DATE) ORDER BY f.event_id",
        [start_day, end_day]).fetchdf()


def features_from_events(events: pd.DataFrame, history: pd.DataFrame | None = None) -> pd.DataFrame:
    """The features of ``events`` (raw event columns) computed outside the warehouse.

    Same SQL as the pipeline, in an in-memory DuckDB: for serving, simulations and backtests.
    ``history`` (earlier raw events) feeds the 7-day regional price window; without it the
    window is the events' own days.
    """
    import pandas as pd
    rows = events if history is None else pd.concat([history, events], ignore_index=True)
    with duckdb.connect() as con:
        con.register("events_in", rows)
        con.execute(f"CREATE TABLE raw_events AS SELECT CAST({schema.TIME_COLUMN} AS DATE) AS day, * FROM events_in")
        days = sorted({str(d) for d in pd.to_datetime(events[schema.TIME_COLUMN]).dt.date})
        frames = [con.execute(FEATURES_SELECT, [day, day, day]).fetchdf() for day in days]
    wanted = set(events[schema.ID_COLUMN])
    result = pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(columns=list(FEATURE_COLUMNS))
    return result[result[schema.ID_COLUMN].isin(wanted)].sort_values(schema.ID_COLUMN, ignore_index=True)
