"""The PNG of `ct tune`: each candidate policy and fixed strategy as compute share against mean metric,
the front drawn, the budget marked and the chosen policy ringed.

matplotlib is imported inside :func:`write_tuning_plot` and drawn through its Agg canvas, like
``plot.write_backtest_plot``, so importing this module stays cheap.
"""

from __future__ import annotations

from pathlib import Path

from ct_assets.core.backtest.tuning import TuningReport
from ct_assets.core.common import save_png


def write_tuning_plot(report: TuningReport, path: str | Path) -> Path:
    """Draw ``report``'s tuned-part scores to a PNG at ``path`` (written atomically); return the path."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    path = Path(path)
    if path.suffix.lower() != ".png":
        raise ValueError(f"plot path must end in .png, got {path}")
    figure = Figure(figsize=(8.0, 5.5), layout="constrained")
    FigureCanvasAgg(figure)
    axes = figure.subplots()
    axes.set_title(f"ct tune {report.stream_name}: seeds {list(report.seeds)}, first {report.tuned_batches} batches",
                   fontsize=10)
    for score in report.scores:
        point = (100 * score.compute_share, score.mean_metric)
        axes.scatter(*point, marker="o" if score.is_candidate else "s", s=30,
                     color="tab:blue" if score.is_candidate else "tab:grey", zorder=3)
        axes.annotate(score.name, point, textcoords="offset points", xytext=(4, 4), fontsize=7)
    on_front = [report.score(name) for name in report.front]
    axes.plot([100 * s.compute_share for s in on_front], [s.mean_metric for s in on_front], color="tab:red",
              linewidth=1.0, label="front")
    axes.axvline(100 * report.budget, color="tab:green", linestyle=":", label=f"budget {report.budget:.0%}")
    if report.chosen is not None:
        chosen = report.score(report.chosen.name)
        axes.scatter(100 * chosen.compute_share, chosen.mean_metric, s=160, facecolors="none", edgecolors="tab:red",
                     zorder=4, label=f"chosen {chosen.name}")
    axes.set_xlabel("training compute, % of always_retrain's")
    axes.set_ylabel(f"mean {report.metric}")
    axes.legend(fontsize=8)
    return save_png(figure, path)
