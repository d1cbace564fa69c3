"""PNG of a drift report: reference vs current distributions of the top drifted features and a
per-segment heat map of effect sizes, so a reader sees what changed, where and how much.

matplotlib is imported inside ``write_drift_plot`` and drawn through its Agg canvas (no pyplot,
no global backend switch), so this works in a headless Dagster run.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from ct_assets.core.common import save_png
from ct_assets.core.monitoring.drift.types import GLOBAL_SEGMENT, DriftReport, FeatureTestResult

if TYPE_CHECKING:
    import pandas as pd
    from matplotlib.axes import Axes

HEATMAP_RATIO_CAP = 3.0  # colour saturates at three times the effect threshold
MAX_CATEGORIES_SHOWN = 10


def _rows_of_segment(frame: pd.DataFrame, result: FeatureTestResult) -> pd.DataFrame:
    if result.segment_column == GLOBAL_SEGMENT:
        return frame
    return frame[frame[result.segment_column].astype(str) == result.segment_value]


def _draw_numeric(axes: Axes, reference: pd.Series, current: pd.Series) -> None:
    import pandas as pd
    pooled = pd.concat([reference, current]).dropna().to_numpy(dtype=np.float64)
    low, high = np.percentile(pooled, [0.5, 99.5]) if pooled.size else (0.0, 1.0)
    if high <= low:
        low, high = low - 0.5, high + 0.5
    bins = np.linspace(low, high, 40)
    axes.hist(reference.dropna(), bins=bins, density=True, histtype="stepfilled", alpha=0.4, label="reference")
    axes.hist(current.dropna(), bins=bins, density=True, histtype="step", linewidth=1.8, label="current")


def _draw_categorical(axes: Axes, reference: pd.Series, current: pd.Series) -> None:
    import pandas as pd
    reference_share = reference.astype(str).value_counts(normalize=True)
    current_share = current.astype(str).value_counts(normalize=True)
    shares = pd.concat([reference_share.rename("reference"), current_share.rename("current")], axis=1).fillna(0.0)
    shares = shares.loc[shares.max(axis=1).sort_values(ascending=False).index[:MAX_CATEGORIES_SHOWN]]
    positions = np.arange(len(shares))
    axes.bar(positions - 0.2, shares["reference"], width=0.4, alpha=0.6, label="reference")
    axes.bar(positions + 0.2, shares["current"], width=0.4, label="current")
    axes.set_xticks(positions, shares.index, rotation=60, ha="right", fontsize=7)
    axes.set_ylabel("share of rows")


def _heatmap_matrix(report: DriftReport) -> tuple[list[str], list[str], np.ndarray, np.ndarray]:
    """Features x segments matrix of effect ratios (NaN = not tested) and the drifted mask."""
    features = [r.feature for r in report.feature_results]
    segments = [GLOBAL_SEGMENT] + [s.name for s in report.segments if not s.skipped]
    ratios = np.full((len(features), len(segments)), np.nan)
    drifted = np.zeros_like(ratios, dtype=bool)
    for result in report.all_results():
        if result.feature in features and result.segment in segments:
            row, column = features.index(result.feature), segments.index(result.segment)
            ratios[row, column] = min(result.effect_ratio, HEATMAP_RATIO_CAP)
            drifted[row, column] = result.drifted
    return features, segments, ratios, drifted


def write_drift_plot(
    reference: pd.DataFrame,
    current: pd.DataFrame,
    report: DriftReport,
    path: str | Path,
    max_features: int = 4,
) -> Path:
    """Draw ``report`` to a PNG at ``path`` (written atomically via a temporary file); return the path.

    Each distribution panel shows the feature where its effect is strongest (e.g. discount within
    region=south for a regional promotion). Features are the report's top drifted ones, or the
    largest effects when nothing drifted.
    """
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    if max_features < 1:
        raise ValueError(f"max_features must be at least 1, got {max_features}")
    path = Path(path)
    if path.suffix.lower() != ".png":
        raise ValueError(f"plot path must end in .png, got {path}")
    features = list(report.top_features or report.ranked_features())[:max_features]

    figure = Figure(figsize=(max(10.0, 3.2 * max(len(features), 1)), 9.0), layout="constrained")
    FigureCanvasAgg(figure)
    grid = figure.add_gridspec(2, max(len(features), 1), height_ratios=(1.0, 1.4))
    figure.suptitle(
        f"Drift: scope={report.scope}"
        + (f" ({', '.join(report.affected_segments[:4])})" if report.affected_segments else "")
        + f", severity={report.severity:.2f} ({report.severity_level}), "
        f"{report.n_current} current vs {report.n_reference} reference rows"
    )
    for index, feature in enumerate(features):
        axes = figure.add_subplot(grid[0, index])
        result = report.strongest_result(feature)
        reference_rows = _rows_of_segment(reference, result)[feature]
        current_rows = _rows_of_segment(current, result)[feature]
        if result.kind == "numeric":
            _draw_numeric(axes, reference_rows, current_rows)
        else:
            _draw_categorical(axes, reference_rows, current_rows)
        marker = "drifted" if result.drifted else "not drifted"
        axes.set_title(
            f"{feature} [{result.segment}]\n{result.effect_size_name}={result.effect_size:.3f} ({marker})", fontsize=9
        )
        axes.legend(fontsize=7)
    if not features:
        figure.add_subplot(grid[0, 0]).text(0.5, 0.5, "no feature tested", ha="center", va="center")

    heat_axes = figure.add_subplot(grid[1, :])
    names, segments, ratios, drifted = _heatmap_matrix(report)
    image = heat_axes.imshow(np.ma.masked_invalid(ratios), aspect="auto", cmap="Reds", vmin=0.0,
                             vmax=HEATMAP_RATIO_CAP)
    heat_axes.set_xticks(np.arange(len(segments)), segments, rotation=60, ha="right", fontsize=7)
    heat_axes.set_yticks(np.arange(len(names)), names, fontsize=7)
    for row, column in zip(*np.nonzero(drifted)):
        colour = "white" if ratios[row, column] > HEATMAP_RATIO_CAP / 2 else "black"  # readable on dark cells
        heat_axes.text(column, row, "x", ha="center", va="center", fontsize=8, color=colour)
    heat_axes.set_title("effect size / threshold per segment (x = drifted: significant and above threshold)",
                        fontsize=9)
    figure.colorbar(image, ax=heat_axes, label="effect / threshold (capped)")

    return save_png(figure, path)
