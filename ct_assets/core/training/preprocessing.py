"""The model's input: which ``features`` columns it reads and how they become a float32 matrix.

Numeric columns are standardised (missing values at the training mean, clipped), categorical
columns one-hot encoded over the vocabulary seen at fit time with an "unknown" bucket.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from ct_assets.core.data import schema

if TYPE_CHECKING:
    import pandas as pd

# The features-table columns the live model consumes, in input order.
MODEL_INPUTS: tuple[str, ...] = (*schema.FEATURE_NUMERIC, *schema.FEATURE_CATEGORICAL)

# One-hot vocabularies are capped so an open vocabulary (query terms) cannot grow the input layer
# without bound; rarer values share the unknown bucket.
DEFAULT_MAX_CATEGORIES = 64
# Standardised numeric inputs are clipped: a rescaled sensor (hardware change) must not saturate
# every unit of the network; drift monitoring, not the model, is what reports such shifts.
NUMERIC_CLIP = 10.0
UNKNOWN_CATEGORY = "__unknown__"


def _require_columns(features: pd.DataFrame, columns: tuple[str, ...]) -> None:
    missing = [c for c in columns if c not in features.columns]
    if missing:
        raise ValueError(f"features are missing columns {missing}")


@dataclass(frozen=True)
class Preprocessor:
    """Turns a features DataFrame into the model's float32 input matrix.

    Numeric columns: ``(x - mean) / std``, missing values imputed to the training mean (0),
    clipped to ``+-NUMERIC_CLIP``. Categorical columns: one-hot over the vocabulary seen at fit
    time, with slot 0 of each column the unknown bucket (unseen values and nulls).

    Example::

        pre = Preprocessor.fit(train_features)
        x = pre.transform(new_features)              # shape (n, pre.input_dim)
        same = Preprocessor.from_dict(pre.to_dict())  # JSON round trip
    """

    numeric_columns: tuple[str, ...]
    means: tuple[float, ...]
    stds: tuple[float, ...]
    categorical_columns: tuple[str, ...]
    vocabularies: tuple[tuple[str, ...], ...]

    def __post_init__(self) -> None:
        if not (len(self.numeric_columns) == len(self.means) == len(self.stds)):
            raise ValueError("numeric_columns, means and stds must have the same length")
        if len(self.categorical_columns) != len(self.vocabularies):
            raise ValueError("categorical_columns and vocabularies must have the same length")
        if any(not (math.isfinite(s) and s > 0) for s in self.stds):
            raise ValueError(f"stds must be finite and > 0, got {self.stds}")

    @classmethod
    def fit(
        cls,
        features: pd.DataFrame,
        numeric_columns: tuple[str, ...] = schema.FEATURE_NUMERIC,
        categorical_columns: tuple[str, ...] = schema.FEATURE_CATEGORICAL,
        max_categories: int = DEFAULT_MAX_CATEGORIES,
    ) -> Preprocessor:
        """Learn means/stds and vocabularies (most frequent values first, ties by name)."""
        import pandas as pd
        if features.empty:
            raise ValueError("cannot fit a Preprocessor on an empty features frame")
        _require_columns(features, (*numeric_columns, *categorical_columns))
        means: list[float] = []
        stds: list[float] = []
        for column in numeric_columns:
            values = pd.to_numeric(features[column], errors="coerce").astype("float64")
            values = values.where(np.isfinite(values))  # +-inf would poison mean and std
            mean = float(values.mean()) if values.notna().any() else 0.0
            std = float(values.std(ddof=0)) if values.notna().any() else 0.0
            means.append(mean)
            # A constant column carries no signal; std 1 keeps it at 0 instead of dividing by 0.
            stds.append(std if math.isfinite(std) and std > 1e-12 else 1.0)
        vocabularies: list[tuple[str, ...]] = []
        for column in categorical_columns:
            counts = features[column].dropna().astype(str).value_counts()
            ranked = sorted(counts.items(), key=lambda item: (-item[1], item[0]))
            vocabularies.append(tuple(value for value, _ in ranked[:max_categories]))
        return cls(tuple(numeric_columns), tuple(means), tuple(stds), tuple(categorical_columns), tuple(vocabularies))

    @property
    def input_dim(self) -> int:
        return len(self.numeric_columns) + sum(len(v) + 1 for v in self.vocabularies)

    @property
    def feature_names(self) -> tuple[str, ...]:
        """Name of every input column, in matrix order."""
        names = list(self.numeric_columns)
        for column, vocabulary in zip(self.categorical_columns, self.vocabularies):
            names.append(f"{column}={UNKNOWN_CATEGORY}")
            names.extend(f"{column}={value}" for value in vocabulary)
        return tuple(names)

    def transform(self, features: pd.DataFrame) -> np.ndarray:
        """Encode ``features`` as a float32 matrix of shape ``(len(features), input_dim)``."""
        import pandas as pd
        _require_columns(features, (*self.numeric_columns, *self.categorical_columns))
        n_rows = len(features)
        matrix = np.zeros((n_rows, self.input_dim), dtype=np.float32)
        for j, column in enumerate(self.numeric_columns):
            values = pd.to_numeric(features[column], errors="coerce").to_numpy(dtype="float64")
            scaled = (values - self.means[j]) / self.stds[j]
            matrix[:, j] = np.clip(np.nan_to_num(scaled, nan=0.0, posinf=NUMERIC_CLIP, neginf=-NUMERIC_CLIP),
                                   -NUMERIC_CLIP, NUMERIC_CLIP)
        offset = len(self.numeric_columns)
        rows = np.arange(n_rows)
        for column, vocabulary in zip(self.categorical_columns, self.vocabularies):
            values = features[column].astype("string")
            # codes: -1 for unseen values and nulls -> bucket 0.
            codes = pd.Categorical(values, categories=list(vocabulary)).codes.astype(np.int64) + 1
            matrix[rows, offset + codes] = 1.0
            offset += len(vocabulary) + 1
        return matrix

    def unknown_share(self, features: pd.DataFrame) -> dict[str, float]:
        """Per categorical column, the share of rows that fall into the unknown bucket."""
        _require_columns(features, self.categorical_columns)
        if features.empty:
            return {column: 0.0 for column in self.categorical_columns}
        return {
            column: float((~features[column].astype("string").isin(list(vocabulary)).fillna(False)).mean())
            for column, vocabulary in zip(self.categorical_columns, self.vocabularies)
        }

    def to_dict(self) -> dict[str, Any]:
        """JSON-able form (lists and floats only)."""
        return {
            "numeric_columns": list(self.numeric_columns),
            "means": list(self.means),
            "stds": list(self.stds),
            "categorical_columns": list(self.categorical_columns),
            "vocabularies": [list(v) for v in self.vocabularies],
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Preprocessor:
        try:
            return cls(
                numeric_columns=tuple(data["numeric_columns"]),
                means=tuple(float(v) for v in data["means"]),
                stds=tuple(float(v) for v in data["stds"]),
                categorical_columns=tuple(data["categorical_columns"]),
                vocabularies=tuple(tuple(str(x) for x in v) for v in data["vocabularies"]),
            )
        except KeyError as missing:
            raise ValueError(f"preprocessor dict is missing key {missing}") from None
