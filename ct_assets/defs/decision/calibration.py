"""The weekly self-calibration: `ct tune` on the live history, proposed as an alert, never applied.

The tuning (backtests, torch) loads inside the asset, not with the code location.
"""

import dagster as dg
from dagster_duckdb import DuckDBResource

from ct_assets.defs.resources import CTSettings, CTStorage

OWNERS = ["team:ml-platform"]
WEEKLY_CRON = "0 4 * * 1"  # Mondays 04:00 UTC, after the nightly policy run


class PolicyCalibrationConfig(dg.Config):
    """The search: ``params`` as ``key=v1,v2`` (empty: the built-in space), seeds and the compute budget
    as a share of always_retrain's."""

    budget: float = 0.2
    seeds: list[int] = [0]
    params: list[str] = []


@dg.asset(
    group_name="training",
    kinds={"pytorch", "python"},
    owners=OWNERS,
    automation_condition=dg.AutomationCondition.on_cron(WEEKLY_CRON),
    description="Weekly: tunes the policy's key thresholds by backtesting on the warehouse's labelled history "
                "(features joined with labels, one batch per day; tuned on the first 2/3, checked on the rest), "
                "writes the best policy within the compute budget to data/policy_proposals/ and raises a "
                "`policy_proposal` alert for approval. It never changes the policy in use. Holds no DuckDB "
                "lock while it backtests.",
)
def policy_calibration(context: dg.AssetExecutionContext, config: PolicyCalibrationConfig, duckdb: DuckDBResource,
                       storage: CTStorage, settings: CTSettings) -> dg.MaterializeResult:
    from dataclasses import replace
    from pathlib import Path

    from ct_assets.core.backtest.live_history import live_history_stream
    from ct_assets.core.backtest.tuned_policy import tuning_header, write_tuned_policy
    from ct_assets.core.backtest.tuning import TUNED_PARAMETERS, search_space, tune, tuning_table
    from ct_assets.core.ops.alerts import KIND_POLICY_PROPOSAL, raise_alert

    with duckdb.get_connection() as con:
        stream, backtest_config = live_history_stream(con, seed=config.seeds[0] if config.seeds else 0)
    policy = settings.policy()
    space = search_space(config.params) if config.params else TUNED_PARAMETERS
    report = tune(stream, backtest_config, policy, space, tuple(config.seeds), config.budget)
    table = tuning_table(report.scores, report.front, report.budget, report.metric)
    metadata: dict[str, object] = {"front": list(report.front), "candidates": dg.MetadataValue.md(table)}
    if report.chosen is None:
        context.log.warning(f"no candidate fits a budget of {report.budget:.0%}: nothing proposed")
        return dg.MaterializeResult(metadata={**metadata, "proposed": False})
    if replace(report.chosen.policy, policy_version="") == replace(policy, policy_version=""):
        context.log.info("the policy in use is already the best within the budget: nothing proposed")
        return dg.MaterializeResult(metadata={**metadata, "proposed": False})
    path, proposed = write_tuned_policy(
        report, Path(settings.policy_path).read_text(encoding="utf-8"),
        storage.layout.policy_proposals_dir / f"policy-{context.run_id[:8]}.toml")
    header = tuning_header(report)
    with duckdb.get_connection() as con:
        alert = raise_alert(con, KIND_POLICY_PROPOSAL, "warning", proposed.policy_version,
                            f"ct tune proposes policy {proposed.policy_version} ({report.chosen.describe()}): "
                            f"review {path}, then copy it over {settings.policy_path} to apply it",
                            {"path": str(path), "chosen": dict(report.chosen.assignment), "how": header},
                            settings.notifier())
    return dg.MaterializeResult(metadata={
        **metadata, "proposed": True, "proposed_policy_version": proposed.policy_version,
        "proposal_path": dg.MetadataValue.path(str(path)), "alert_id": alert.alert_id,
        "how_chosen": dg.MetadataValue.md("\n".join(f"- {line}" for line in header)),
    })
