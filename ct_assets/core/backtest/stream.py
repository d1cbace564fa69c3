"""The stream a backtest replays: an ordered sequence of labelled batches and what its columns mean.

Every source (the shop simulator, the literature's synthetic generators, a real dataset, a user's own
history through the adapter) produces a :class:`Stream`, so the backtest engine never knows where the
data came from.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd

LABEL_COLUMN = "label"


@dataclass(frozen=True)
class StreamSpec:
    """What the columns of a stream's batches are.

    ``numeric_features`` and ``categorical_features`` are the model inputs. ``segment_columns`` name the
    categorical columns drift localisation splits by (a shift confined to one segment is *local*); they
    may also be model inputs. ``protected_column`` is the fairness gate's group column and is never a
    model input. ``change_points`` are the batch indices where the generating process changes (known for
    synthetic streams, empty when unknown); time-to-recover is measured from them.
    """

    name: str
    numeric_features: tuple[str, ...]
    categorical_features: tuple[str, ...] = ()
    segment_columns: tuple[str, ...] = ()
    protected_column: str | None = None
    change_points: tuple[int, ...] = ()
    description: str = ""

    def __post_init__(self) -> None:
        if not self.name:
            raise ValueError("a stream needs a name")
        inputs = (*self.numeric_features, *self.categorical_features)
        if not inputs:
            raise ValueError(f"stream {self.name!r}: needs at least one numeric or categorical feature")
        if len(set(inputs)) != len(inputs):
            raise ValueError(f"stream {self.name!r}: a feature is listed twice in {inputs}")
        if LABEL_COLUMN in inputs:
            raise ValueError(f"stream {self.name!r}: the label column {LABEL_COLUMN!r} cannot be a feature")
        if self.protected_column is not None and self.protected_column in inputs:
            raise ValueError(f"stream {self.name!r}: protected column {self.protected_column!r} "
                             "must not be a model input")
        if any(point < 1 for point in self.change_points) or list(self.change_points) != sorted(
                set(self.change_points)):
            raise ValueError(f"stream {self.name!r}: change_points must be increasing batch indices >= 1, "
                             f"got {self.change_points}")

    @property
    def required_columns(self) -> tuple[str, ...]:
        extra = tuple(c for c in self.segment_columns if c not in self.categorical_features)
        protected = (self.protected_column,) if self.protected_column else ()
        return (*self.numeric_features, *self.categorical_features, *extra, *protected, LABEL_COLUMN)


@dataclass(frozen=True, eq=False)
class Stream:
    """An ordered tuple of batches (pandas frames with ``spec.required_columns``; ``label`` is 0/1).

    Example::

        stream = Stream(StreamSpec("toy", numeric_features=("x",)), batches=(frame0, frame1))
    """

    spec: StreamSpec
    batches: tuple[pd.DataFrame, ...] = field(repr=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "batches", tuple(self.batches))
        if len(self.batches) < 2:
            raise ValueError(f"stream {self.spec.name!r}: needs at least 2 batches, got {len(self.batches)}")
        for index, batch in enumerate(self.batches):
            missing = [c for c in self.spec.required_columns if c not in batch.columns]
            if missing:
                raise ValueError(f"stream {self.spec.name!r} batch {index}: missing columns {missing}")
            if batch.empty:
                raise ValueError(f"stream {self.spec.name!r} batch {index}: is empty")
            labels = batch[LABEL_COLUMN]
            if labels.isna().any() or not np.isin(labels.to_numpy(), (0, 1)).all():
                raise ValueError(f"stream {self.spec.name!r} batch {index}: labels must be 0 or 1")
        if self.spec.change_points and self.spec.change_points[-1] >= len(self.batches):
            raise ValueError(f"stream {self.spec.name!r}: change point {self.spec.change_points[-1]} is past "
                             f"the last batch ({len(self.batches) - 1})")

    @property
    def n_batches(self) -> int:
        return len(self.batches)
