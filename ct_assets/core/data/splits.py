"""Deterministic holdout assignment: the same event is holdout (never trained on) in every run, every day.

The decision depends only on the event id and a salt, never on row order, batch or date, so a
model trained on Monday's window and one trained on Friday's window never see each other's holdout
rows, and gates compare candidates on the same events.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable

import numpy as np

_HASH_SPACE = float(2**64)


def holdout_mask(event_ids: Iterable[object], fraction: float = 0.2, salt: str = "holdout-v1") -> np.ndarray:
    """True for events in the holdout set: ``sha256(salt:id)`` mapped to [0, 1) is below ``fraction``.

    Raising ``fraction`` only adds events to the holdout (the set for 0.1 is inside the set for
    0.2); changing ``salt`` draws an independent split.

    Example: ``holdout_mask(["o-1", "o-2", "o-3"], fraction=0.5)`` -> e.g. ``array([False, True, False])``.
    """
    import pandas as pd
    if not 0.0 < fraction < 1.0:
        raise ValueError(f"fraction must be in (0, 1), got {fraction!r}")
    if not salt:
        raise ValueError("salt must be a non-empty string")
    ids = pd.Series(list(event_ids), dtype="object")
    if ids.isna().any():
        raise ValueError(f"event_ids contain {int(ids.isna().sum())} missing ids")
    prefix = f"{salt}:".encode()
    positions = np.fromiter(
        (int.from_bytes(hashlib.sha256(prefix + str(event_id).encode()).digest()[:8], "big") for event_id in ids),
        dtype=np.float64,
        count=len(ids),
    ) / _HASH_SPACE
    return positions < fraction


def long_term_holdout_mask(event_ids: Iterable[object], holdout_fraction: float = 0.2, share: float = 0.25,
                           salt: str = "holdout-v1") -> np.ndarray:
    """True for events in the fixed long-term holdout set: a deterministic ``share`` of the holdout events.

    It is :func:`holdout_mask` at ``holdout_fraction * share`` with the same salt, so (the masks being
    nested) every long-term event is a holdout event and never trained on, and the set is spread over
    the whole history in proportion to its traffic: the rows the gates keep every update honest on.

    >>> ids = [f"o-{i}" for i in range(2000)]
    >>> long_term, holdout = long_term_holdout_mask(ids), holdout_mask(ids)
    >>> bool((long_term <= holdout).all()), round(long_term.mean(), 2)
    (True, 0.05)
    """
    if not 0.0 < share <= 1.0:
        raise ValueError(f"share must be in (0, 1], got {share!r}")
    return holdout_mask(event_ids, fraction=holdout_fraction * share, salt=salt)
