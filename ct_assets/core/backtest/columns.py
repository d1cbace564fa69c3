"""Which columns of a team's own history table are model inputs: given by the user, or detected.

Detection, for every column that is not the timestamp, the label or the protected column (never a model
input) and that the user did not assign:

- numbers are numeric features, unless they look like an id: integers that are all distinct, or
  integers with more than two values that never decrease (or never increase) in file order (a row
  counter, a day number);
- booleans and text with few distinct values (at most the model's one-hot vocabulary cap, and at
  most half the rows) are categorical features;
- text with many distinct values (free text, keys), other date/time columns, columns with one value
  and empty columns are excluded, each with its reason.

Example:

>>> import pandas as pd
>>> table = pd.DataFrame({"ts": ["2024-01-01", "2024-01-02", "2024-01-03", "2024-01-04"],
...                       "order_id": [11, 12, 13, 14], "amount": [3.5, 1.0, 3.5, 2.0],
...                       "country": ["de", "fr", "de", "de"], "y": [0, 1, 0, 1]})
>>> roles = detect_columns(table, timestamp_column="ts", label_column="y")
>>> roles.numeric, roles.categorical
(('amount',), ('country',))
>>> dict(roles.excluded)["order_id"]
'looks like an id: all values are distinct integers'
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

from ct_assets.core.training.preprocessing import DEFAULT_MAX_CATEGORIES

# A text column is categorical when it repeats its values: at most this share of its rows are distinct.
MAX_DISTINCT_SHARE = 0.5


@dataclass(frozen=True)
class ColumnRoles:
    """The model inputs of a table and every other column with why it is not one.

    ``detected`` names the inputs that were detected rather than given.
    """

    numeric: tuple[str, ...]
    categorical: tuple[str, ...]
    excluded: tuple[tuple[str, str], ...]
    detected: frozenset[str] = frozenset()

    def describe(self) -> str:
        """Plain-language lines: the inputs (marked when detected) and the excluded columns with reasons."""
        def names(columns: tuple[str, ...]) -> str:
            return ", ".join(f"{c} (detected)" if c in self.detected else c for c in columns) or "none"

        lines = [f"numeric features: {names(self.numeric)}", f"categorical features: {names(self.categorical)}"]
        lines.extend(f"excluded {column}: {reason}" for column, reason in self.excluded)
        return "\n".join(lines)


def require_columns(table: pd.DataFrame, columns: Sequence[str], what: str) -> None:
    """Raise ValueError naming the unknown ``columns`` (given as ``what``) and the table's columns."""
    unknown = [column for column in columns if column not in table.columns]
    if unknown:
        raise ValueError(f"unknown {what} column(s) {', '.join(map(repr, unknown))}; the table has "
                         f"{', '.join(map(str, table.columns))}")


def _is_integral(values: pd.Series) -> bool:
    if pd.api.types.is_integer_dtype(values):
        return True
    return pd.api.types.is_float_dtype(values) and bool(np.all(np.mod(values.to_numpy(), 1.0) == 0.0))


def _looks_like_timestamps(values: pd.Series) -> bool:
    sample = values.astype(str).head(50)
    parsed = pd.to_datetime(sample, errors="coerce", format="ISO8601")
    # ISO dates carry a '-' or ':'; this keeps codes such as "2024" or "1e5" out.
    return bool(parsed.notna().all() and sample.str.contains(r"[-:]").all())


def _role(values: pd.Series) -> tuple[str, str]:
    """("numeric" | "categorical" | "excluded", reason) for one column's non-missing values."""
    distinct = values.nunique()
    if values.empty:
        return "excluded", "empty: no values"
    if distinct == 1:
        return "excluded", f"constant: one value ({values.iloc[0]!r})"
    if pd.api.types.is_bool_dtype(values):
        return "categorical", "true/false"
    if pd.api.types.is_datetime64_any_dtype(values):
        return "excluded", "another date/time column"
    if pd.api.types.is_numeric_dtype(values):
        if _is_integral(values):
            if distinct == len(values):
                return "excluded", "looks like an id: all values are distinct integers"
            if distinct > 2 and (values.is_monotonic_increasing or values.is_monotonic_decreasing):
                return "excluded", "looks like an id or counter: integers in monotone order"
        return "numeric", "numbers"
    if _looks_like_timestamps(values):
        return "excluded", "another date/time column"
    if distinct <= DEFAULT_MAX_CATEGORIES and distinct <= MAX_DISTINCT_SHARE * len(values):
        return "categorical", f"text with {distinct} distinct values"
    return "excluded", f"high-cardinality text: {distinct} distinct values in {len(values)} rows"


def detect_columns(table: pd.DataFrame, *, timestamp_column: str, label_column: str,
                   numeric: Sequence[str] | None = None, categorical: Sequence[str] | None = None,
                   protected_column: str | None = None) -> ColumnRoles:
    """The numeric and categorical inputs of ``table``: ``numeric`` / ``categorical`` when given, else detected.

    Each kind is detected only when not given, among the columns not already assigned. Raises
    ValueError for unknown column names, a column assigned twice, or no input left.
    """
    given_numeric, given_categorical = tuple(numeric or ()), tuple(categorical or ())
    require_columns(table, (timestamp_column,), "timestamp")
    require_columns(table, (label_column,), "label")
    require_columns(table, given_numeric, "numeric")
    require_columns(table, given_categorical, "categorical")
    if protected_column is not None:
        require_columns(table, (protected_column,), "protected")
    reserved = {timestamp_column: "the timestamp", label_column: "the label"}
    if protected_column is not None:
        reserved[protected_column] = "the protected column (fairness groups, never a model input)"
    twice = sorted(set(given_numeric) & set(given_categorical)) + [c for c in (*given_numeric, *given_categorical)
                                                                   if c in reserved]
    if twice:
        raise ValueError(f"column(s) {', '.join(map(repr, twice))} given two roles")

    found: dict[str, list[str]] = {"numeric": [], "categorical": []}
    excluded = [(column, reason) for column, reason in reserved.items()]
    for column in table.columns:
        if column in reserved or column in given_numeric or column in given_categorical:
            continue
        role, reason = _role(table[column].dropna())
        if role == "excluded":
            excluded.append((column, reason))
        elif (role == "numeric" and numeric is None) or (role == "categorical" and categorical is None):
            found[role].append(column)
        else:
            excluded.append((column, f"{role} ({reason}), but not among the given {role} features"))
    roles = ColumnRoles(numeric=given_numeric if numeric is not None else tuple(found["numeric"]),
                        categorical=given_categorical if categorical is not None else tuple(found["categorical"]),
                        excluded=tuple(excluded), detected=frozenset(found["numeric"] + found["categorical"]))
    if not roles.numeric and not roles.categorical:
        raise ValueError(f"no model input among the columns: {'; '.join(f'{c}: {r}' for c, r in excluded)}")
    return roles
