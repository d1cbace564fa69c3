"""The shop simulator as a backtest stream: one batch per simulated day, with the live features.

Each day's orders come from :func:`ct_assets.simulation.generation.generate_day` and are turned into model
features by :func:`ct_assets.core.data.features.features_from_events`, the SQL the pipeline runs, over all
days at once so every day's 7-day regional price window sees the days before it, as in the warehouse.
The label is every order's true ``is_fraud`` (all orders, no delay): the backtest engine applies its
own label delay and coverage.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from ct_assets.core.backtest.stream import LABEL_COLUMN, Stream, StreamSpec
from ct_assets.core.data import schema
from ct_assets.core.data.features import features_from_events
from ct_assets.core.training.preprocessing import MODEL_INPUTS
from ct_assets.simulation.config import SimulatorConfig
from ct_assets.simulation.generation import generate_day
from ct_assets.simulation.scenarios import format_timeline, parse_timeline

# Several kinds of change, about a week apart, after a stable start (days 0-11):
#   12  regional promotion in south starts   local, covariate + concept (discounts stop meaning fraud)
#   20  sensor hardware change               global, covariate only (readings rescaled, labels unchanged)
#   26  regional promotion ends              local, back to the base behaviour in south
#   33  new slang in fashion                 local, unseen query terms with their own fraud effect
#   41  market shift                         global concept drift (P(y|X) changes, ranking inverts)
#   50  group shift for group_b              local to one protected group: features and concept move
MIXED_TIMELINE = ("stable@0,regional_promotion@12:region=south:until=26,sensor_hardware_change@20,"
                  "new_slang@33:family=fashion,market_shift@41,group_shift@50")


def timeline_change_points(timeline: str, n_days: int) -> tuple[int, ...]:
    """The days in ``1 .. n_days-1`` where an event of ``timeline`` starts or ends.

    >>> timeline_change_points("stable@0,regional_promotion@5:until=9,market_shift@20", 15)
    (5, 9)
    """
    days = set()
    for event in parse_timeline(timeline):
        days.add(event.start_day)
        if event.end_day is not None:
            days.add(event.end_day)
    return tuple(sorted(day for day in days if 1 <= day < n_days))


def simulator_stream(timeline: str = MIXED_TIMELINE, n_days: int = 60, seed: int = 0,
                     events_per_day: int | None = None) -> Stream:
    """Days ``0 .. n_days-1`` of the simulator under ``timeline`` (a spec for ``parse_timeline``).

    ``events_per_day`` defaults to the simulator's ``rows_per_day``. Batch columns: the features
    table's columns (``day``, ``event_id``, ``event_ts``, the model inputs, ``protected_group``) and
    ``label``. Model inputs are exactly the live model's (``preprocessing.MODEL_INPUTS``); the segment
    columns are ``schema.SEGMENT_COLUMNS``; ``protected_group`` is the fairness column.

    Example::

        stream = simulator_stream("stable@0,market_shift@5", n_days=10, events_per_day=500)
        stream.spec.change_points   # (5,)
    """
    if isinstance(n_days, bool) or not isinstance(n_days, int) or n_days < 2:
        raise ValueError(f"n_days must be an int >= 2, got {n_days!r}")
    if events_per_day is not None and (isinstance(events_per_day, bool) or not isinstance(events_per_day, int)
                                       or events_per_day < 1):
        raise ValueError(f"events_per_day must be a positive int or None, got {events_per_day!r}")
    defaults = SimulatorConfig()
    config = SimulatorConfig(seed=seed, timeline=parse_timeline(timeline),
                             rows_per_day=events_per_day if events_per_day is not None else defaults.rows_per_day)

    days = [generate_day(config, day_index) for day_index in range(n_days)]
    events = pd.concat([day.events for day in days], ignore_index=True)
    labels = pd.DataFrame({
        schema.ID_COLUMN: events[schema.ID_COLUMN].to_numpy(),
        LABEL_COLUMN: np.concatenate([day.is_fraud for day in days]).astype(np.int64),
    })
    # All days in one call: the window of day d reads the raw events of days d-6 .. d.
    features = features_from_events(events).merge(labels, on=schema.ID_COLUMN, how="inner", validate="one_to_one")
    if len(features) != len(events):
        raise ValueError(f"features_from_events returned {len(features)} rows for {len(events)} events")
    batches = tuple(frame.reset_index(drop=True)
                    for _, frame in features.groupby("day", sort=True))

    numeric = tuple(c for c in MODEL_INPUTS if c in schema.FEATURE_NUMERIC)
    categorical = tuple(c for c in MODEL_INPUTS if c in schema.FEATURE_CATEGORICAL)
    spec = StreamSpec(
        name="simulator", numeric_features=numeric, categorical_features=categorical,
        segment_columns=tuple(c for c in schema.SEGMENT_COLUMNS if c in features.columns),
        protected_column=schema.GROUP_COLUMN,
        change_points=timeline_change_points(timeline, n_days),
        description=(f"shop simulator, {n_days} days x {config.rows_per_day} orders, seed {seed}, "
                     f"timeline {format_timeline(config.timeline)}"))
    return Stream(spec, batches)
