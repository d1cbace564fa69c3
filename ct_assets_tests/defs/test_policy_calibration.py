"""`policy_calibration`: tunes on the warehouse's labelled history and proposes the policy as an alert."""

import dagster as dg
import duckdb
import numpy as np
import pandas as pd

from ct_assets.core.data import schema
from ct_assets.core.data.features import FEATURE_COLUMNS, ensure_features_table
from ct_assets.core.data.ingest import ensure_ingest_tables
from ct_assets.core.decision.policy_config import load_policy_config
from ct_assets.defs.decision.calibration import WEEKLY_CRON, policy_calibration


def seed_history(database: str, n_days: int = 9, rows_per_day: int = 120) -> None:
    """A warehouse whose features and labels hold ``n_days`` days of orders; the fraud rule flips halfway."""
    rng = np.random.default_rng(0)
    n = n_days * rows_per_day
    day = np.repeat(pd.date_range("2024-03-01", periods=n_days).date, rows_per_day)
    frame = pd.DataFrame({"day": day, schema.ID_COLUMN: np.arange(n),
                          schema.TIME_COLUMN: pd.to_datetime(day) + pd.to_timedelta(rng.uniform(0, 86000, n), "s"),
                          schema.GROUP_COLUMN: rng.choice(["a", "b"], n)})
    for column in schema.FEATURE_CATEGORICAL:
        frame[column] = rng.choice(["north", "south"], n)
    for column in schema.FEATURE_NUMERIC:
        frame[column] = rng.normal(size=n)
    after = np.arange(n) >= n // 2
    logit = np.where(after, -2.0, 2.0) * frame["log_price"] + frame["discount"]
    label_rows = pd.DataFrame({"arrival_day": day, "event_id": np.arange(n),
                           "is_fraud": (rng.uniform(size=n) < 1 / (1 + np.exp(-logit))).astype(int)})
    with duckdb.connect(database) as con:
        ensure_ingest_tables(con)
        ensure_features_table(con)
        con.execute(f"INSERT INTO features SELECT {', '.join(FEATURE_COLUMNS)} FROM frame")
        con.execute(f"INSERT INTO labels ({', '.join(label_rows.columns)}) SELECT * FROM label_rows")


def test_calibration_writes_a_proposal_and_raises_an_alert_without_applying_it(instance, resources, data_dir,
                                                                               policy_path):
    seed_history(str(data_dir / "warehouse.duckdb"))
    before = policy_path.read_text()
    # Neither value is the policy's (20000), so whichever wins is a change to propose.
    config = {"budget": 1.0, "params": ["labels.accumulated_trigger_batches=0.5,1.0"]}
    result = dg.materialize([policy_calibration], instance=instance, resources=resources,
                            run_config={"ops": {"policy_calibration": {"config": config}}})
    assert result.success
    metadata = instance.get_latest_materialization_event(
        dg.AssetKey("policy_calibration")).asset_materialization.metadata
    assert policy_path.read_text() == before  # never applied unapproved
    assert metadata["proposed"].value
    proposals = list((data_dir / "policy_proposals").glob("*.toml"))
    assert len(proposals) == 1 and proposals[0].read_text().startswith("# Tuned by `ct tune` on stream")
    proposed = load_policy_config(proposals[0])
    with duckdb.connect(str(data_dir / "warehouse.duckdb"), read_only=True) as con:
        alerts = con.execute("SELECT kind, subject, message FROM alerts").fetchall()
    assert alerts == [("policy_proposal", proposed.policy_version, alerts[0][2])]
    assert str(proposals[0]) in alerts[0][2]


def test_the_asset_runs_weekly_on_a_cron():
    condition = policy_calibration.automation_conditions_by_key[dg.AssetKey("policy_calibration")]
    assert condition == dg.AutomationCondition.on_cron(WEEKLY_CRON)
