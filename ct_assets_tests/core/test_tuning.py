"""`ct tune`: the search, the front, the choice within the budget, the written policy file and bad input."""

from __future__ import annotations

import tomllib
from pathlib import Path

import pytest

from ct_assets.cli import main
from ct_assets.core.backtest.service import stream_config
from ct_assets.core.backtest.synthetic import sea_stream
from ct_assets.core.backtest.tuned_policy import write_tuned_policy
from ct_assets.core.backtest.tuning import (
    FIXED_STRATEGIES,
    Score,
    TuningReport,
    candidate_policies,
    choose,
    front,
    search_space,
    split_stream,
    tune,
)
from ct_assets.core.decision.policy_config import DEFAULT_POLICY_PATH, load_policy_config

SPACE = {"labels.accumulated_trigger_batches": (0.5, 10.0)}


@pytest.fixture(scope="module")
def report() -> TuningReport:
    stream = sea_stream(n_batches=10, batch_size=250, change_points=(5,), drift="abrupt", seed=0)
    return tune(stream, stream_config(stream), load_policy_config(), SPACE, seeds=(0,), budget=0.5)


HAND_MADE = [Score("cheap", True, 0.80, 0.05), Score("dominated", True, 0.79, 0.10), Score("mid", True, 0.86, 0.15),
             Score("never", False, 0.78, 0.0), Score("periodic", False, 0.85, 0.30),
             Score("always_retrain", False, 0.88, 1.0)]


def test_front_keeps_exactly_the_undominated_points_cheapest_first() -> None:
    assert front(HAND_MADE) == ("never", "cheap", "mid", "always_retrain")
    assert front(HAND_MADE, higher_is_better=False) == ("never",)  # a loss: lower is better


@pytest.mark.parametrize(("budget", "expected"), [(0.2, "mid"), (0.12, "cheap"), (1.0, "mid"), (0.01, None)])
def test_choice_is_the_best_metric_within_the_budget(budget: float, expected: str | None) -> None:
    chosen = choose(HAND_MADE, budget)
    assert (chosen.name if chosen else None) == expected  # fixed strategies are never chosen


def test_a_tie_goes_to_the_cheaper_candidate() -> None:
    tied = [Score("dear", True, 0.9, 0.2), Score("cheap", True, 0.9, 0.1)]
    assert choose(tied, 0.5).name == "cheap"


def test_tuning_a_tiny_stream_respects_the_budget_and_checks_the_later_part(report: TuningReport) -> None:
    names = {score.name for score in report.scores}
    assert names == {"c0", "c1", *FIXED_STRATEGIES}
    assert report.chosen is not None and report.score(report.chosen.name).compute_share <= 0.5
    assert report.score("always_retrain").compute_share == 1.0
    assert set(report.front) <= names and report.front
    assert {s.name for s in report.held_out} == {"ct_policy", *FIXED_STRATEGIES}
    assert (report.tuned_batches, report.held_out_batches) == (7, 3)


def test_the_written_policy_keeps_the_file_and_loads_back_with_the_chosen_values(report: TuningReport,
                                                                                 tmp_path: Path) -> None:
    base_text = DEFAULT_POLICY_PATH.read_text()
    path, _ = write_tuned_policy(report, base_text, tmp_path / "policy.tuned.toml")
    text = path.read_text()
    assert text.startswith("# Tuned by `ct tune` on stream 'sea'") and "seeds [0]" in text
    assert "# Event trigger (\"more data helps\", the cheap path)" in text  # the user's comments stay
    loaded = load_policy_config(path)
    for key, value in report.chosen.assignment:
        table, name = key.split(".")
        assert getattr(getattr(loaded, table), name) == value
        assert tomllib.loads(text)[table][name] == value


@pytest.mark.parametrize(("space", "message"), [
    ({}, "search space is empty"),
    ({"labels.no_such_key": (1,)}, "unknown policy key 'labels.no_such_key'"),
    ({"nope.accumulated_trigger": (1,)}, "unknown policy key"),
    ({"labels.accumulated_trigger_batches": ()}, "has no candidate values"),
    ({"labels.accumulated_trigger_batches": ("many",)}, "'labels.accumulated_trigger_batches': expected a finite number"),
    ({"drift.min_severity_score": (1.5,)}, "'drift.min_severity_score': 1.5 is above the maximum"),
])
def test_a_bad_search_space_is_refused_naming_the_key(space: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        candidate_policies(load_policy_config(), space)


@pytest.mark.parametrize("budget", [0.0, -0.1, 1.5])
def test_a_budget_outside_zero_to_one_is_refused(budget: float) -> None:
    stream = sea_stream(n_batches=8, batch_size=100, change_points=(4,), seed=0)
    with pytest.raises(ValueError, match=r"in \(0, 1\]"):
        tune(stream, stream_config(stream), load_policy_config(), SPACE, budget=budget)


def test_search_space_reads_values_as_toml() -> None:
    assert search_space(["drift.min_severity_score=0.3,0.5", "labels.when_scarce_for_retrain=fine_tune"]) == {
        "drift.min_severity_score": (0.3, 0.5), "labels.when_scarce_for_retrain": ("fine_tune",)}
    with pytest.raises(ValueError, match="key=v1,v2"):
        search_space(["labels.accumulated_trigger_batches"])


def test_split_keeps_change_points_and_holds_out_unseen_batches() -> None:
    stream = sea_stream(n_batches=12, batch_size=50, change_points=(3, 9), seed=0)
    tuned, later = split_stream(stream, 2 / 3, warmup_batches=2)
    assert (tuned.n_batches, later.n_batches) == (8, 6)
    assert tuned.spec.change_points == (3,) and later.spec.change_points == (3,)  # batch 9 = later[3]
    assert later.batches[2] is stream.batches[8]  # the first scored batch is the first one not tuned on
    with pytest.raises(ValueError, match="too few"):
        split_stream(sea_stream(n_batches=3, batch_size=50, change_points=(1,), seed=0), 2 / 3, warmup_batches=2)


def test_ct_tune_end_to_end_prints_the_front_and_writes_policy_and_plot(tmp_path: Path,
                                                                       capsys: pytest.CaptureFixture[str]) -> None:
    from ct_assets_tests.core.test_cli_backtest import drifting_history

    history = tmp_path / "orders.csv"
    drifting_history(n_rows=900, n_days=9).to_csv(history, index=False)
    out_path, plot = tmp_path / "tuned.toml", tmp_path / "front.png"
    assert main(["tune", "--file", str(history), "--timestamp-column", "created_at", "--label-column", "outcome",
                 "--positive-label", "fraud", "--budget", "0.5", "--param", "labels.accumulated_trigger_batches=0.5,10.0",
                 "--out", str(out_path), "--plot", str(plot)]) == 0
    out = capsys.readouterr().out
    assert "tune orders: 6 batches tuned on, 3 held out" in out and "front: " in out and "| always_retrain " in out
    assert "held out (the last 3 batches" in out and f"wrote {out_path}" in out
    assert load_policy_config(out_path).labels.accumulated_trigger_batches in (0.5, 10.0)
    assert plot.read_bytes()[:4] == b"\x89PNG"


def test_ct_tune_bad_input_exits_2_with_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["tune", "--stream", "sea_abrupt", "--quick", "--param", "labels.typo=1,2"]) == 2
    assert "unknown policy key 'labels.typo'" in capsys.readouterr().err
    assert main(["tune", "--stream", "sea_abrupt", "--quick", "--budget", "2"]) == 2
    assert "in (0, 1]" in capsys.readouterr().err
