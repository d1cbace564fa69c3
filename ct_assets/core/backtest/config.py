"""How a backtest replays a stream: windows, label delay, seeds and the live settings it runs with."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

from ct_assets.core.backtest.human import HumanResponse
from ct_assets.core.backtest.scoring import METRICS
from ct_assets.core.monitoring.concept_drift import ConceptDriftConfig
from ct_assets.core.release.lineup import GateSettings
from ct_assets.core.training.model import TrainingConfig
from ct_assets.core.training.online import OnlineConfig


@dataclass(frozen=True)
class BacktestConfig:
    """How a backtest replays a stream.

    Windows are in batches: a retrain uses the labelled training rows of the last ``window_batches``
    labelled batches, a fine-tune the last ``fine_tune_window_batches`` plus a replay sample from the
    ``replay_batches`` before them. ``metric`` is what the tables report per batch (accuracy is
    always reported too). ``multivariate_drift`` is off by default: the MMD permutation test costs
    ~1 s per report, and with the default severity weights it cannot raise a medium alarm alone.
    ``seed`` overrides the seeds of training, gates, drift and concept-drift tests and salts the
    holdout split.
    """

    label_delay: int = 0
    warmup_batches: int = 2
    window_batches: int = 7
    fine_tune_window_batches: int = 1
    replay_batches: int = 4
    metric: str = "auc"
    seed: int = 0
    training: TrainingConfig = field(default_factory=lambda: TrainingConfig(device="cpu"))
    gates: GateSettings = field(default_factory=GateSettings)
    online: OnlineConfig = field(default_factory=OnlineConfig)
    concept: ConceptDriftConfig = field(default_factory=ConceptDriftConfig)
    holdout_fraction: float = 0.2
    rollback_margin: float = 0.01
    recovery_tolerance: float = 0.01
    recovery_pre_batches: int = 3
    max_reference_rows: int = 5000
    multivariate_drift: bool = False
    # Features the drift report skips, e.g. ("is_weekend",) for daily shop batches (live DriftConfig default).
    drift_excluded_features: tuple[str, ...] = ()
    # Whose holdout rows the concept-drift test compares the newest labelled batch with: "retrain_window"
    # (the window of the last full retrain in the serving model's chain, as live monitoring does: a
    # fine-tune that failed to learn a new regime then does not make its own poor level the baseline)
    # or "model_window" (the serving model's own window; a what-if).
    concept_reference: str = "retrain_window"
    # Who answers an escalation (core/backtest/human.py): "approve_after:N" batches, or "never".
    human: str = "approve_after:1"
    include_oracle: bool = True
    hindsight_max_k: int = 10
    # Torch intra-op threads during the run (restored after); None leaves torch's setting alone. The
    # models are tiny: one thread is faster than two fighting over a busy 2-core machine (measured
    # 1.4 ms vs 17 ms per step under load).
    torch_threads: int | None = 1

    def __post_init__(self) -> None:
        if self.label_delay < 0:
            raise ValueError(f"label_delay must be >= 0, got {self.label_delay}")
        for name in ("warmup_batches", "window_batches", "fine_tune_window_batches",
                     "recovery_pre_batches", "max_reference_rows", "hindsight_max_k"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        if self.replay_batches < 0:
            raise ValueError(f"replay_batches must be >= 0, got {self.replay_batches}")
        if self.concept_reference not in ("model_window", "retrain_window"):
            raise ValueError(f"concept_reference must be 'model_window' or 'retrain_window', "
                             f"got {self.concept_reference!r}")
        if self.metric not in METRICS:
            raise ValueError(f"metric must be one of {METRICS}, got {self.metric!r}")
        if not 0.0 < self.holdout_fraction < 1.0:
            raise ValueError(f"holdout_fraction must be in (0, 1), got {self.holdout_fraction}")
        if self.rollback_margin < 0 or self.recovery_tolerance < 0:
            raise ValueError("rollback_margin and recovery_tolerance must be >= 0")
        HumanResponse.parse(self.human)
        if self.torch_threads is not None and self.torch_threads < 1:
            raise ValueError(f"torch_threads must be >= 1 or None, got {self.torch_threads}")

    def to_dict(self) -> dict[str, Any]:
        """JSON-able form (recorded with every stored run)."""
        data = {name: getattr(self, name) for name in self.__dataclass_fields__
                if name not in ("training", "gates", "online", "concept")}
        data.update(training=self.training.to_dict(), gates=asdict(self.gates), online=asdict(self.online),
                    concept=asdict(self.concept))
        return data
