"""The simulator's settings: seed, volume, calendar, label process, serving and complaint rates, timeline."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, timedelta

import numpy as np

from ct_assets.simulation.scenarios import STABLE, ScenarioEvent, Timeline

ID_STRIDE = 1_000_000  # event_id = day_index * ID_STRIDE + row


@dataclass(frozen=True)
class SimulatorConfig:
    """Everything that determines the stream; two equal configs generate identical days."""

    seed: int = 7
    rows_per_day: int = 2000
    start_date: date = date(2025, 1, 1)
    label_delay_days: int = 1
    label_coverage: float = 0.8
    block_threshold: float = 0.5
    complaint_base_rate: float = 0.002  # complaints per order when the served model makes no error
    complaint_per_error: float = 0.1  # extra complaints per order per unit of served error rate
    timeline: Timeline = STABLE

    def __post_init__(self) -> None:
        if isinstance(self.seed, bool) or not isinstance(self.seed, int) or self.seed < 0:
            raise ValueError(f"seed must be a non-negative int, got {self.seed!r}")
        if not 1 <= self.rows_per_day < ID_STRIDE:
            raise ValueError(f"rows_per_day must be within [1, {ID_STRIDE - 1}], got {self.rows_per_day}")
        if self.label_delay_days < 0:
            raise ValueError(f"label_delay_days must be >= 0, got {self.label_delay_days}")
        for name in ("label_coverage", "block_threshold"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise ValueError(f"{name} must be within [0, 1], got {getattr(self, name)}")
        if self.complaint_base_rate < 0 or self.complaint_per_error < 0:
            raise ValueError("complaint_base_rate and complaint_per_error must be >= 0")
        if not isinstance(self.timeline, tuple) or not self.timeline \
                or not all(isinstance(event, ScenarioEvent) for event in self.timeline):
            raise ValueError("timeline must be a non-empty tuple of ScenarioEvent (see parse_timeline)")

    def day_date(self, day_index: int) -> date:
        """The calendar date of ``day_index``."""
        check_day_index(day_index)
        return self.start_date + timedelta(days=day_index)


def check_day_index(day_index: int) -> None:
    """A day index is a non-negative int (numpy ints included, bools not)."""
    if isinstance(day_index, bool) or not isinstance(day_index, (int, np.integer)) or day_index < 0:
        raise ValueError(f"day_index must be a non-negative int, got {day_index!r}")
