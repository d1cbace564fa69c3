"""The backtest's run-level rules: the modelled human behind escalations, the warm-up warning, the
training floor and hindsight over a batch without a defined metric (real torch training, no mocks)."""

from dataclasses import dataclass, replace

import pytest

from ct_assets.core.backtest.catalog import MIN_RETRAIN_STEPS, strategy_table, training_config
from ct_assets.core.backtest.config import BacktestConfig
from ct_assets.core.backtest.engine import run_backtest
from ct_assets.core.backtest.human import HumanResponse
from ct_assets.core.backtest.strategies import AlwaysRetrain, Never, ReplayState, StrategyDecision
from ct_assets.core.backtest.stream import Stream
from ct_assets.core.backtest.synthetic import sea_stream
from ct_assets.core.decision.policy import Decision
from ct_assets.core.decision.policy_config import ACTION_ESCALATE, ACTION_NONE, ACTION_RETRAIN
from ct_assets.core.training.model import TrainingConfig
from ct_assets_tests.core.test_backtest_engine import small_config, toy_stream


def escalation(wanted: str) -> Decision:
    return Decision(action=ACTION_ESCALATE, requires_approval=True, reasons=("labels_scarce: too few labels",),
                    fired_rules=("labels_scarce",), wanted_action=wanted, estimated_cost=0.0,
                    budget_left_after=0.0, cost_unit="train_gflops", policy_version="test")


@dataclass(frozen=True)
class EscalatesAt:
    """Escalates after the batches in ``steps`` (recommending ``wanted``), does nothing otherwise."""

    steps: tuple[int, ...]
    wanted: str = ACTION_RETRAIN
    name: str = "escalates"
    needs_drift: bool = False
    needs_concept: bool = False
    gated: bool = False

    def decide(self, state: ReplayState) -> StrategyDecision:
        if state.step in self.steps:
            return StrategyDecision(ACTION_ESCALATE, decision=escalation(self.wanted))
        return StrategyDecision(ACTION_NONE)


def replay(strategy: EscalatesAt, human: str) -> tuple[list[tuple[int, str]], object]:
    result = run_backtest(toy_stream(n_batches=8), small_config(human=human, include_oracle=False),
                          strategies=(strategy,))
    run = result.run(strategy.name)
    return [(row.batch, row.outcome) for row in result.daily if row.outcome], run


def test_the_human_approves_the_recommended_action_after_n_batches() -> None:
    outcomes, run = replay(EscalatesAt((3,)), "approve_after:2")
    assert (run.escalations, run.escalations_approved, run.retrains) == (1, 1, 1)
    assert [t.step for t in run.trainings] == [5]
    assert outcomes == [(3, "escalated; retrain awaits approval (2 batches)"),
                        (5, "escalated; approved after 2 batches: retrain; promoted")]


def test_an_immediate_answer_acts_on_the_escalation_batch() -> None:
    outcomes, run = replay(EscalatesAt((3,)), "approve_after:0")
    assert [t.step for t in run.trainings] == [3] and run.escalations_approved == 1
    assert outcomes == [(3, "escalated; approved after 0 batches: retrain; promoted")]


def test_a_human_who_never_answers_is_counted_not_silent() -> None:
    outcomes, run = replay(EscalatesAt((3, 4)), "never")
    assert (run.escalations, run.escalations_approved, run.compute.n_trainings) == (2, 0, 0)
    assert outcomes == [(3, "escalated; no answer"), (4, "escalated; no answer")]


def test_repeated_escalations_wait_for_the_open_question() -> None:
    outcomes, run = replay(EscalatesAt((2, 3, 4)), "approve_after:2")
    assert (run.escalations, run.escalations_approved, [t.step for t in run.trainings]) == (3, 1, [4])
    assert outcomes[1] == (3, "escalated; the escalation of batch 2 is still open")
    assert outcomes[2] == (4, "escalated; the escalation of batch 2 is still open; "
                              "escalated; approved after 2 batches: retrain; promoted")


def test_nothing_to_approve_when_the_evidence_itself_asked_for_a_human() -> None:
    outcomes, run = replay(EscalatesAt((3,), wanted=ACTION_ESCALATE), "approve_after:1")
    assert (run.escalations, run.escalations_approved, run.compute.n_trainings) == (1, 0, 0)
    assert outcomes == [(3, "escalated; nothing to approve (recommended: escalate_to_human)")]


def test_the_human_setting_is_validated() -> None:
    assert HumanResponse.parse("approve_after:3").approve_after == 3
    for bad in ("approve_after:", "approve_after:-1", "sometimes"):
        with pytest.raises(ValueError, match="human"):
            BacktestConfig(human=bad)


def test_a_constant_warm_up_model_is_warned_about(caplog: pytest.LogCaptureFixture) -> None:
    starved = TrainingConfig(hidden_sizes=(4,), epochs=1, batch_size=2048, learning_rate=1e-6, device="cpu")
    with caplog.at_level("WARNING", logger="ct_assets.core.backtest.engine"):
        result = run_backtest(toy_stream(n_batches=4, change=2), small_config(training=starved, include_oracle=False),
                              strategies=(Never(),))
    (note,) = result.notes
    assert note.startswith("the warm-up model is constant") and "1 optimizer steps" in note
    assert note in caplog.text and f"Note: {note}" in strategy_table(result)
    healthy = run_backtest(toy_stream(n_batches=4, change=2), small_config(include_oracle=False), strategies=(Never(),))
    assert healthy.notes == ()


def test_the_catalog_training_budget_has_a_floor_for_small_batches() -> None:
    small = sea_stream(n_batches=6, batch_size=235, change_points=(3,), seed=0)
    config = training_config(small, window_batches=7)
    assert config.min_steps == MIN_RETRAIN_STEPS
    assert config.fine_tune_max_steps == round(0.2 * MIN_RETRAIN_STEPS)  # 30 budgeted steps: the floor wins
    large = training_config(sea_stream(n_batches=6, batch_size=4000, change_points=(3,), seed=0), window_batches=7)
    assert large.fine_tune_max_steps > round(0.2 * MIN_RETRAIN_STEPS)


def test_hindsight_skips_a_batch_without_a_defined_metric() -> None:
    stream = toy_stream(n_batches=7)
    batches = list(stream.batches)
    batches[4] = batches[4].assign(label=0)  # AUC is undefined on a single class
    result = run_backtest(Stream(stream.spec, tuple(batches)), small_config(include_oracle=False),
                          strategies=(Never(), AlwaysRetrain()))
    assert [row.metric for row in result.daily if row.batch == 4] == [None, None]
    assert result.hindsight is not None and result.hindsight.skipped_batches == (4,)
    assert result.hindsight.schedules and result.hindsight.retrain_train_gflops > 0
    assert replace(result.hindsight, retrain_cpu_seconds=1e9) == result.hindsight
