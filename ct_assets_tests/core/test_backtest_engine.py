"""The backtest engine on small numpy streams with a known abrupt change (real torch training, no mocks)."""

from dataclasses import replace

import numpy as np
import pandas as pd
import pytest

from ct_assets.core.backtest import strategies as backtest_strategies
from ct_assets.core.backtest.config import BacktestConfig
from ct_assets.core.backtest.engine import run_backtest
from ct_assets.core.backtest.results import BacktestResult
from ct_assets.core.backtest.strategies import (
    AlwaysRetrain,
    CTPolicy,
    Never,
    ReplayState,
    StrategyDecision,
    default_strategies,
    policy_evidence,
)
from ct_assets.core.backtest.stream import Stream, StreamSpec
from ct_assets.core.backtest.targets import (
    check_targets,
    stable_batches,
    time_to_recover,
)
from ct_assets.core.decision import policy as live_policy
from ct_assets.core.decision.policy import decide
from ct_assets.core.decision.policy_config import load_policy_config
from ct_assets.core.training.cost import estimate_compute_cost
from ct_assets.core.training.model import TrainingConfig
from ct_assets.core.training.online import OnlineConfig

TINY = TrainingConfig(hidden_sizes=(8,), epochs=3, batch_size=128, device="cpu", fine_tune_max_steps=10)
N_BATCHES, CHANGE = 9, 5


def toy_stream(n_batches: int = N_BATCHES, rows: int = 600, change: int = CHANGE, seed: int = 0) -> Stream:
    """x1 drives the label with sign +1 before ``change`` and -1 from it on (abrupt global concept drift)."""
    rng = np.random.default_rng(seed)
    batches = []
    for index in range(n_batches):
        x1, x2 = rng.normal(size=rows), rng.normal(size=rows)
        segment = rng.choice(["a", "b", "c"], rows)
        sign = 1.0 if index < change else -1.0
        logit = 2.0 * sign * x1 + x2 + 0.5 * (segment == "a")
        label = (rng.random(rows) < 1.0 / (1.0 + np.exp(-logit))).astype(np.int64)
        batches.append(pd.DataFrame({"x1": x1, "x2": x2, "segment": segment,
                                     "group": rng.choice(["g1", "g2"], rows), "label": label}))
    spec = StreamSpec("toy", numeric_features=("x1", "x2"), categorical_features=("segment",),
                      segment_columns=("segment",), protected_column="group", change_points=(change,))
    return Stream(spec, tuple(batches))


def small_config(**overrides) -> BacktestConfig:
    values = {"training": TINY, "window_batches": 3,
              "online": OnlineConfig(steps_per_batch=5, min_batch_rows=100), "seed": 1}
    values.update(overrides)
    return BacktestConfig(**values)


@pytest.fixture(scope="module")
def result() -> BacktestResult:
    return run_backtest(toy_stream(), small_config())


def test_every_strategy_and_the_oracle_run_over_every_evaluated_batch(result):
    names = [run.strategy for run in result.runs]
    assert names == [*backtest_strategies.STRATEGY_NAMES, "oracle"]
    assert [run.is_reference for run in result.runs] == [False] * 9 + [True]
    for name in names:
        batches = [row.batch for row in result.daily if row.strategy == name]
        assert batches == list(range(2, N_BATCHES))
    assert [row.is_change_point for row in result.daily if row.strategy == "never"] == \
        [batch == CHANGE for batch in range(2, N_BATCHES)]


def test_same_seed_same_tables_and_a_new_seed_changes_them(result):
    again = run_backtest(toy_stream(), small_config())
    assert again == result  # measured compute is excluded from equality, everything else must match
    assert again.run_id == result.run_id
    compute = result.run("always_retrain").compute
    assert replace(compute, cpu_seconds=1e9, energy_kwh=1.0) == compute  # measurements: explicitly not compared
    assert replace(compute, n_trainings=compute.n_trainings + 1) != compute
    assert replace(compute, train_gflops=compute.train_gflops * 2) != compute  # deterministic: compared
    for run in result.runs:  # the deterministic unit repeats exactly, unlike the CPU seconds
        assert again.run(run.strategy).compute.train_gflops == run.compute.train_gflops
    other = run_backtest(toy_stream(), small_config(seed=2), strategies=(Never(), AlwaysRetrain()))
    assert other.run_id != result.run_id
    assert other.run("always_retrain").mean_metric != result.run("always_retrain").mean_metric


def test_compute_accounting_per_strategy(result):
    evaluated = N_BATCHES - 2
    never = result.run("never")
    assert result.warmup_compute.n_trainings == 1 and result.warmup_compute.cpu_seconds > 0
    assert never.compute.n_trainings == 0 and never.compute.cpu_seconds == 0.0 and never.retrains == 0
    always = result.run("always_retrain")
    assert always.retrains == always.compute.n_trainings == evaluated  # every batch after warm-up (delay 0)
    assert [t.step for t in always.trainings] == list(range(2, N_BATCHES))
    assert result.run("always_finetune").fine_tunes == evaluated
    assert result.run("online").online_updates == evaluated
    # Every k batches counted from the warm-up model (trained after batch 1): 3 -> after 4 and 7, 7 -> after 8.
    assert [t.step for t in result.run("periodic_3").trainings] == [4, 7]
    assert [t.step for t in result.run("periodic_7").trainings] == [8]
    assert result.run("periodic_14").trainings == ()
    for run in result.runs:
        assert len(run.trainings) == run.compute.n_trainings == run.retrains + run.fine_tunes + run.online_updates
        assert run.compute.cpu_seconds == pytest.approx(sum(t.cost.cpu_seconds for t in run.trainings))
        assert run.compute.wall_seconds == pytest.approx(sum(t.cost.wall_seconds for t in run.trainings))
        assert run.compute.energy_kwh == pytest.approx(sum(t.cost.energy_kwh for t in run.trainings))
        assert run.compute.co2_kg == pytest.approx(sum(t.cost.co2_kg for t in run.trainings))
        assert run.compute.train_gflops == pytest.approx(sum(t.cost.train_gflops for t in run.trainings))
        for training in run.trainings:  # each cost is the training module's own estimate
            cost = training.cost
            assert cost == estimate_compute_cost(cost.wall_seconds, cost.cpu_seconds, cost.device, TINY,
                                                 examples_processed=cost.examples_processed,
                                                 n_parameters=cost.n_parameters)
            assert cost.examples_processed > 0 and cost.n_parameters > 0


def test_policy_decisions_are_the_live_decide_on_the_same_evidence(result):
    assert backtest_strategies.decide is live_policy.decide
    policy = load_policy_config()
    steps = [step for step in result.policy_steps if step.strategy == "ct_policy"]
    assert [s.batch for s in steps] == list(range(2, N_BATCHES))
    for step in steps:
        assert decide(step.evidence, policy) == step.decision
    actions = [row.action for row in result.daily if row.strategy == "ct_policy"]
    assert actions == [step.decision.action for step in steps]
    # The abrupt sign flip is concept drift the live policy reacts to.
    assert any("concept_drift" in step.decision.fired_rules for step in steps if step.batch >= CHANGE)


def test_gated_strategy_outcomes_add_up(result):
    policy_run = result.run("ct_policy")
    assert policy_run.promotions + policy_run.gate_failures == policy_run.retrains + policy_run.fine_tunes
    assert policy_run.rollbacks <= policy_run.promotions
    rows = [row for row in result.daily if row.strategy == "ct_policy"]
    assert sum("rejected" in row.outcome for row in rows) == policy_run.gate_failures
    assert sum("rolled back" in row.outcome for row in rows) == policy_run.rollbacks
    for name in ("always_retrain", "always_finetune", "periodic_3", "periodic_7", "drift_retrain"):
        assert result.run(name).gate_failures == 0  # fixed strategies promote without gates


def alternating_stream(n_batches: int = 8, rows: int = 300) -> Stream:
    """y = [x > 0] on even batches and [x < 0] on odd ones: a model trained on batch t scores
    batch t+1 with AUC ~0 and batch t+2 with AUC ~1."""
    rng = np.random.default_rng(5)
    batches = []
    for index in range(n_batches):
        x = rng.normal(size=rows)
        label = ((x > 0) if index % 2 == 0 else (x < 0)).astype(np.int64)
        batches.append(pd.DataFrame({"x": x, "label": label}))
    return Stream(StreamSpec("alternating", numeric_features=("x",)), tuple(batches))


@pytest.mark.parametrize("delay", [0, 1])
def test_label_delay_is_respected_and_scoring_comes_before_training(delay):
    training = TrainingConfig(hidden_sizes=(4,), epochs=25, learning_rate=0.03, batch_size=64, device="cpu")
    config = BacktestConfig(label_delay=delay, warmup_batches=1, window_batches=1, training=training,
                            include_oracle=False)
    result = run_backtest(alternating_stream(), config, strategies=(AlwaysRetrain(),))
    metrics = {row.batch: row.metric for row in result.daily}
    served = [metrics[batch] for batch in range(2 + delay, 8)]
    if delay == 0:
        # Trained on batch t after scoring it, the model meets the opposite rule on t+1. Training on
        # batch t before scoring it (train-then-test) would give AUC ~1 here.
        assert max(served) < 0.1
    else:
        # With one batch of delay the newest usable labels are batch t-1, whose rule batch t+1 shares.
        # Training on batch t (labels not yet available) would give AUC ~0 here.
        assert min(served) > 0.9
    assert result.run("always_retrain").retrains == 8 - 1 - delay
    assert [row.outcome for row in result.daily][:delay] == ["waiting for labels"] * delay


def test_policy_evidence_reads_the_replay_state(result):
    policy = load_policy_config()
    state = ReplayState(step=9, newest_labelled_batch=8, rows_per_batch=(1000,) * 10, model_path="fine_tune",
                        model_window=(5, 6), last_retrain_step=4, fine_tunes_since_full_retrain=2,
                        signals=(), trainings=(), drift_report=None, concept_drift=None)
    with pytest.raises(ValueError, match="drift report"):
        policy_evidence(state, policy)
    step = next(s for s in result.policy_steps if s.strategy == "ct_policy" and s.batch == 4)
    evidence = step.evidence
    assert evidence.production_model_exists and evidence.risk_tier == "low"
    assert evidence.label_coverage_recent == 1.0  # delay 0: every batch of the recent window is labelled
    assert evidence.production_model_age_days >= 1.0
    assert evidence.complaint_alert is False


def test_a_custom_strategy_sees_only_available_labels():
    seen: list[tuple[int, int]] = []

    class Recorder:
        name, needs_drift, needs_concept, gated = "recorder", False, False, False

        def decide(self, state: ReplayState) -> StrategyDecision:
            seen.append((state.step, state.newest_labelled_batch))
            return StrategyDecision("none")

    run_backtest(toy_stream(n_batches=6), small_config(label_delay=2, include_oracle=False), strategies=(Recorder(),))
    assert seen == [(4, 2), (5, 3)]


def test_bad_configuration_is_rejected():
    with pytest.raises(ValueError, match="metric"):
        BacktestConfig(metric="f1")
    with pytest.raises(ValueError, match="label_delay"):
        BacktestConfig(label_delay=-1)
    with pytest.raises(ValueError, match="concept_reference"):
        BacktestConfig(concept_reference="yesterday")
    with pytest.raises(ValueError, match="warm-up"):
        run_backtest(toy_stream(n_batches=3, change=2), small_config(warmup_batches=3))
    with pytest.raises(ValueError, match="distinct names"):
        run_backtest(toy_stream(), small_config(), strategies=(Never(), Never()))
    with pytest.raises(ValueError, match="unknown strategies"):
        default_strategies(load_policy_config(), names=("never", "sometimes"))


def test_time_to_recover_on_a_known_series():
    series = [0.90, 0.91, 0.89, 0.60, 0.70, 0.85, 0.895, 0.90, 0.50, 0.52, 0.55]
    recoveries = time_to_recover(series, first_batch=2, change_points=(5, 10), pre_batches=3, tolerance=0.01)
    assert recoveries[0].pre_level == pytest.approx(0.90)
    assert recoveries[0].batches == 3  # batch 8 (0.895) is the first >= 0.891
    assert recoveries[1].pre_level == pytest.approx((0.85 + 0.895 + 0.90) / 3)
    assert recoveries[1].batches is None  # never back before the stream ends
    assert time_to_recover([0.3, 0.2], first_batch=0, change_points=(1,), higher_is_better=False)[0].batches == 0
    assert time_to_recover([0.9, 0.9], first_batch=5, change_points=(5,))[0].pre_level is None


def test_stable_batches_skip_the_settling_time_after_each_change():
    assert stable_batches(2, 12, (5,), settle_batches=3) == (2, 3, 4, 8, 9, 10, 11)
    assert stable_batches(0, 4, (), settle_batches=3) == (0, 1, 2, 3)


def test_target_checks_are_data_not_assertions(result):
    checks = {check.target: check for check in check_targets(result)}
    assert set(checks) == {"pareto", "metric_vs_baseline", "compute_share", "recovery", "false_triggers"}
    policy_run, baseline = result.run("ct_policy"), result.run("always_retrain")
    assert checks["metric_vs_baseline"].value == pytest.approx(policy_run.mean_metric - baseline.mean_metric)
    assert checks["metric_vs_baseline"].met == (checks["metric_vs_baseline"].value >= -0.005)
    assert checks["compute_share"].value == pytest.approx(policy_run.compute.train_gflops
                                                          / baseline.compute.train_gflops)
    dominating = [r.strategy for r in result.runs if not r.is_reference and r.strategy != "ct_policy"
                  and r.mean_metric > policy_run.mean_metric
                  and r.compute.train_gflops < policy_run.compute.train_gflops]
    assert checks["pareto"].met == (not dominating)
    assert all(check.stream == "toy" and check.label_delay == 0 for check in checks.values())


def test_a_stricter_policy_variant_runs_through_the_same_engine():
    policy = load_policy_config()
    strict = replace(policy, metric=replace(policy.metric, fine_tune_drop=0.5, retrain_drop=0.6),
                     concept_drift=replace(policy.concept_drift, min_metric_drop=0.9))
    result = run_backtest(toy_stream(n_batches=6), small_config(include_oracle=False),
                          strategies=(CTPolicy(policy=strict, name="ct_strict"),))
    steps = result.policy_steps
    assert all(decide(step.evidence, strict) == step.decision for step in steps)
    assert "concept_drift" not in {rule for step in steps for rule in step.decision.fired_rules}
