"""The stream a backtest replays, split once into labels and train/holdout rows.

Every batch is split by ``splits.holdout_mask`` on ``<stream>:<batch>:<row>`` (salted with the seed):
no strategy ever trains on holdout rows, and gates judge on them. A fixed share of the holdout rows
(``splits.long_term_holdout_mask``) is the long-term holdout set the gates guard the whole history on.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from ct_assets.core.backtest.stream import LABEL_COLUMN, Stream, StreamSpec
from ct_assets.core.data.splits import holdout_mask, long_term_holdout_mask


@dataclass(frozen=True, eq=False)
class Batches:
    """The stream split once into model inputs, labels and train/holdout rows (the long-term holdout
    rows among the holdout ones)."""

    stream: Stream
    labels: tuple[np.ndarray, ...]
    train_masks: tuple[np.ndarray, ...]
    long_term_masks: tuple[np.ndarray, ...]

    @classmethod
    def prepare(cls, stream: Stream, fraction: float, seed: int) -> Batches:
        labels, masks, long_term = [], [], []
        for index, batch in enumerate(stream.batches):
            labels.append(batch[LABEL_COLUMN].to_numpy(dtype=np.int64))
            ids = [f"{stream.spec.name}:{index}:{row}" for row in range(len(batch))]
            masks.append(~holdout_mask(ids, fraction=fraction, salt=f"backtest-{seed}"))
            long_term.append(long_term_holdout_mask(ids, holdout_fraction=fraction, salt=f"backtest-{seed}"))
        return cls(stream, tuple(labels), tuple(masks), tuple(long_term))

    @property
    def spec(self) -> StreamSpec:
        return self.stream.spec

    def frame(self, batch: int) -> pd.DataFrame:
        return self.stream.batches[batch]

    def rows(self, first: int, last: int, part: str) -> tuple[pd.DataFrame, np.ndarray, np.ndarray]:
        """(features, labels, batch index per row) of batches ``first..last``, ``part`` 'train', 'holdout'
        or 'long_term' (the long-term holdout rows)."""
        frames, labels, batch_ids = [], [], []
        for b in range(max(0, first), last + 1):
            mask = {"train": self.train_masks[b], "holdout": ~self.train_masks[b],
                    "long_term": self.long_term_masks[b]}[part]
            frames.append(self.frame(b).loc[mask])
            labels.append(self.labels[b][mask])
            batch_ids.append(np.full(int(mask.sum()), b))
        if not frames:
            raise ValueError(f"no batches in {first}..{last}")
        return pd.concat(frames, ignore_index=True), np.concatenate(labels), np.concatenate(batch_ids)
