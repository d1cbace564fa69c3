"""One PNG per backtest run: the metric over batches per strategy (change points marked) and a
cost-vs-accuracy scatter (training GFLOPs, the deterministic cost unit, against mean metric, one point per
strategy, Pareto front marked).

matplotlib is imported inside :func:`write_backtest_plot` and drawn through its Agg canvas (no pyplot,
no display), so importing this module stays cheap.
"""

from __future__ import annotations

from pathlib import Path

from ct_assets.core.backtest.results import BacktestResult
from ct_assets.core.common import save_png


def pareto_front(points: dict[str, tuple[float, float]], higher_is_better: bool = True) -> tuple[str, ...]:
    """Names of the non-dominated points of ``{name: (cost, metric)}``, cheapest first.

    A point is dominated when another is at most as costly and at least as good, and strictly better
    in one of the two.

    >>> pareto_front({"a": (1.0, 0.8), "b": (2.0, 0.9), "c": (3.0, 0.85)})
    ('a', 'b')
    """
    sign = 1.0 if higher_is_better else -1.0

    def dominates(p: tuple[float, float], q: tuple[float, float]) -> bool:
        no_worse = p[0] <= q[0] and sign * p[1] >= sign * q[1]
        return no_worse and (p[0] < q[0] or sign * p[1] > sign * q[1])

    front = [name for name, point in points.items()
             if not any(dominates(other, point) for other_name, other in points.items() if other_name != name)]
    return tuple(sorted(front, key=lambda name: (points[name][0], -sign * points[name][1])))


def write_backtest_plot(result: BacktestResult, path: str | Path) -> Path:
    """Draw ``result`` to a PNG at ``path`` (written atomically via a temporary file); return the path.

    The reference (oracle) run is drawn dashed in the metric panel and left out of the scatter: it is
    not a strategy one could run.
    """
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    path = Path(path)
    if path.suffix.lower() != ".png":
        raise ValueError(f"plot path must end in .png, got {path}")
    figure = Figure(figsize=(15.0, 5.5), layout="constrained")
    FigureCanvasAgg(figure)
    line_axes, scatter_axes = figure.subplots(1, 2, width_ratios=(1.7, 1.0))
    figure.suptitle(f"Backtest {result.stream_name}: label delay {result.label_delay}, seed {result.seed} "
                    f"(run {result.run_id})")

    frame = result.daily_frame()
    for run in result.runs:
        rows = frame[frame["strategy"] == run.strategy].sort_values("batch")
        line_axes.plot(rows["batch"], rows["metric"].astype(float), label=run.strategy, linewidth=1.2,
                       linestyle="--" if run.is_reference else "-", alpha=0.6 if run.is_reference else 0.95)
    for index, point in enumerate(result.change_points):
        line_axes.axvline(point, color="grey", linestyle=":", linewidth=1.0,
                          label="change point" if index == 0 else None)
    line_axes.set_xlabel("batch")
    line_axes.set_ylabel(result.metric)
    line_axes.set_title(f"prequential {result.metric} per batch", fontsize=10)
    line_axes.legend(fontsize=7, ncol=2)

    real = [run for run in result.runs if not run.is_reference]
    points = {run.strategy: (run.compute.train_gflops, run.mean_metric) for run in real}
    front = pareto_front(points, result.higher_is_better)
    for name, (cost, metric) in points.items():
        on_front = name in front
        scatter_axes.scatter([cost], [metric], s=60 if on_front else 30, marker="o" if on_front else "x",
                             color="tab:red" if on_front else "tab:blue", zorder=3)
        scatter_axes.annotate(name, (cost, metric), textcoords="offset points", xytext=(4, 4), fontsize=8)
    scatter_axes.plot([points[name][0] for name in front], [points[name][1] for name in front],
                      color="tab:red", linewidth=1.0, label="Pareto front")
    scatter_axes.set_xlabel("training compute (GFLOPs = 6 x weights x examples, warm-up model excluded)")
    scatter_axes.set_ylabel(f"mean {result.metric}")
    scatter_axes.set_title("cost vs accuracy", fontsize=10)
    scatter_axes.legend(fontsize=8)

    return save_png(figure, path)
