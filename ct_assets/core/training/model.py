"""Two training paths for the order-risk model: retrain from scratch, or fine-tune a base model.

Both train the same small torch MLP on the model inputs of
:mod:`~ct_assets.core.training.preprocessing`, are deterministic under ``TrainingConfig.seed`` on
CPU, and return a :class:`TrainedModel` whose weights are plain numpy arrays on the CPU (ready
for safetensors; no pickle anywhere) together with its
:class:`~ct_assets.core.training.cost.ComputeCost`.

``torch`` is imported inside the functions that need it, so importing this module stays cheap.
"""

from __future__ import annotations

import math
import time
from dataclasses import asdict, dataclass, replace
from typing import TYPE_CHECKING, Any, Literal

import numpy as np

from ct_assets.core.data import schema
from ct_assets.core.training.cost import ComputeCost, estimate_compute_cost
from ct_assets.core.training.preprocessing import DEFAULT_MAX_CATEGORIES, Preprocessor

if TYPE_CHECKING:
    import pandas as pd
    import torch

Device = Literal["auto", "cpu", "cuda"]
TrainingPath = Literal["retrain", "fine_tune", "online"]
_PREDICT_CHUNK_ROWS = 65_536


@dataclass(frozen=True)
class TrainingConfig:
    """Hyperparameters of both training paths and the constants of the energy estimate.

    Example: ``TrainingConfig(hidden_sizes=(16,), epochs=3, seed=7)``.
    """

    hidden_sizes: tuple[int, ...] = (32, 16)
    epochs: int = 8
    learning_rate: float = 3e-3
    batch_size: int = 256
    weight_decay: float = 1e-4
    seed: int = 0
    # Floor of a retrain's optimizer steps (more passes over a small training set), so a small window is
    # not under-trained; 0: just ``epochs`` passes.
    min_steps: int = 0
    fine_tune_learning_rate: float = 5e-4
    fine_tune_max_steps: int = 150
    # Share of each fine-tune training set drawn from older (replay) data, against forgetting.
    replay_fraction: float = 0.3
    device: Device = "auto"  # "auto": CUDA when available, else CPU (bit-for-bit determinism holds on CPU)
    max_categories: int = DEFAULT_MAX_CATEGORIES
    cpu_watts_per_thread: float = 4.0
    gpu_watts: float = 250.0
    grid_kg_co2_per_kwh: float = 0.475

    def __post_init__(self) -> None:
        if not self.hidden_sizes or any(int(h) < 1 for h in self.hidden_sizes):
            raise ValueError(f"hidden_sizes must be non-empty positive integers, got {self.hidden_sizes!r}")
        object.__setattr__(self, "hidden_sizes", tuple(int(h) for h in self.hidden_sizes))
        for name in ("epochs", "batch_size", "fine_tune_max_steps", "max_categories"):
            if int(getattr(self, name)) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)!r}")
        for name in ("learning_rate", "fine_tune_learning_rate"):
            if not float(getattr(self, name)) > 0:
                raise ValueError(f"{name} must be > 0, got {getattr(self, name)!r}")
        for name in ("weight_decay", "cpu_watts_per_thread", "gpu_watts", "grid_kg_co2_per_kwh"):
            if float(getattr(self, name)) < 0:
                raise ValueError(f"{name} must be >= 0, got {getattr(self, name)!r}")
        if int(self.min_steps) < 0:
            raise ValueError(f"min_steps must be >= 0, got {self.min_steps!r}")
        if not 0.0 <= self.replay_fraction < 1.0:
            raise ValueError(f"replay_fraction must be in [0, 1), got {self.replay_fraction!r}")
        if self.device not in ("auto", "cpu", "cuda"):
            raise ValueError(f"device must be 'auto', 'cpu' or 'cuda', got {self.device!r}")

    def to_dict(self) -> dict[str, Any]:
        """JSON-able form (for manifests and the registry)."""
        data = asdict(self)
        data["hidden_sizes"] = list(self.hidden_sizes)
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> TrainingConfig:
        """Inverse of :meth:`to_dict`; unknown keys are a ``ValueError``."""
        unknown = set(data) - set(cls.__dataclass_fields__)
        if unknown:
            raise ValueError(f"unknown TrainingConfig keys: {sorted(unknown)}")
        values = dict(data)
        if "hidden_sizes" in values:
            values["hidden_sizes"] = tuple(values["hidden_sizes"])
        return cls(**values)


@dataclass(frozen=True, eq=False)
class TrainedModel:
    """A trained MLP: CPU numpy weights plus everything needed to use and describe it."""

    weights: dict[str, np.ndarray]
    preprocessor: Preprocessor
    config: TrainingConfig
    training_path: TrainingPath
    n_train_rows: int
    n_steps: int
    final_train_loss: float
    cost: ComputeCost
    n_replay_rows: int = 0  # of n_train_rows, rows replayed from older data (fine-tunes only)

    @property
    def hidden_sizes(self) -> tuple[int, ...]:
        return self.config.hidden_sizes

    @property
    def architecture(self) -> dict[str, Any]:
        """JSON-able description sufficient to rebuild the network."""
        return {
            "type": "mlp",
            "input_dim": self.preprocessor.input_dim,
            "hidden_sizes": list(self.hidden_sizes),
            "activation": "relu",
            "output": "logit",
        }


def select_device(preference: Device) -> str:
    """'cuda' when allowed and available, else 'cpu'; an explicit 'cuda' without CUDA is an error."""
    import torch

    if preference not in ("auto", "cpu", "cuda"):
        raise ValueError(f"device must be 'auto', 'cpu' or 'cuda', got {preference!r}")
    if preference == "cpu":
        return "cpu"
    if preference == "cuda" and not torch.cuda.is_available():
        raise ValueError("device='cuda' was requested but CUDA is not available on this machine")
    return "cuda" if torch.cuda.is_available() else "cpu"


def _build_network(input_dim: int, hidden_sizes: tuple[int, ...]) -> torch.nn.Sequential:
    import torch

    layers: list[torch.nn.Module] = []
    width = input_dim
    for hidden in hidden_sizes:
        layers += [torch.nn.Linear(width, hidden), torch.nn.ReLU()]
        width = hidden
    layers.append(torch.nn.Linear(width, 1))
    return torch.nn.Sequential(*layers)


def _load_weights(network: torch.nn.Sequential, weights: dict[str, np.ndarray]) -> None:
    import torch

    expected = set(network.state_dict())
    if set(weights) != expected:
        raise ValueError(f"weights do not match the architecture: expected {sorted(expected)}, got {sorted(weights)}")
    network.load_state_dict({k: torch.from_numpy(np.ascontiguousarray(v)) for k, v in weights.items()})


def _weights_to_numpy(network: torch.nn.Sequential) -> dict[str, np.ndarray]:
    return {k: v.detach().to("cpu").numpy().astype(np.float32, copy=True) for k, v in network.state_dict().items()}


def _labels_array(labels: pd.Series | np.ndarray, n_rows: int, what: str) -> np.ndarray:
    import pandas as pd
    values = pd.to_numeric(pd.Series(np.asarray(labels).reshape(-1)), errors="coerce").to_numpy(
        dtype="float64", na_value=np.nan)
    if len(values) != n_rows:
        raise ValueError(f"{what}: {len(values)} labels for {n_rows} feature rows")
    if np.isnan(values).any() or not np.isin(values, (0.0, 1.0)).all():
        raise ValueError(f"{what}: labels must be 0/1 without missing values")
    return values.astype(np.float32)


def _run_steps(
    network: torch.nn.Sequential,
    x: np.ndarray,
    y: np.ndarray,
    *,
    learning_rate: float,
    weight_decay: float,
    batch_size: int,
    max_steps: int,
    seed: int,
    device: str,
) -> tuple[int, int, float]:
    """Mini-batch AdamW on shuffled passes over (x, y) for at most ``max_steps`` steps.

    Returns (steps taken, examples processed: the mini-batch rows summed over the steps, mean loss of
    the last pass).
    """
    import torch

    x_t = torch.from_numpy(x).to(device)
    y_t = torch.from_numpy(y).to(device)
    optimizer = torch.optim.AdamW(network.parameters(), lr=learning_rate, weight_decay=weight_decay)
    loss_fn = torch.nn.BCEWithLogitsLoss()
    shuffle_rng = np.random.default_rng(seed)
    network.train()
    steps, examples, last_pass_loss = 0, 0, float("nan")
    while steps < max_steps:
        order = torch.from_numpy(shuffle_rng.permutation(len(x))).to(device)
        loss_sum, n_seen = 0.0, 0
        for start in range(0, len(x), batch_size):
            if steps >= max_steps:
                break
            index = order[start:start + batch_size]
            optimizer.zero_grad()
            loss = loss_fn(network(x_t[index]).squeeze(1), y_t[index])
            loss.backward()
            optimizer.step()
            loss_sum += float(loss.detach()) * len(index)
            n_seen += len(index)
            steps += 1
        examples += n_seen
        last_pass_loss = loss_sum / n_seen
    network.eval()
    return steps, examples, last_pass_loss


def _parameter_count(network: torch.nn.Sequential) -> int:
    return sum(parameter.numel() for parameter in network.parameters())


def train_from_scratch(
    features: pd.DataFrame,
    labels: pd.Series | np.ndarray,
    config: TrainingConfig,
    *,
    numeric_columns: tuple[str, ...] = schema.FEATURE_NUMERIC,
    categorical_columns: tuple[str, ...] = schema.FEATURE_CATEGORICAL,
) -> TrainedModel:
    """Fit a new preprocessor and a freshly initialised MLP on (features, labels).

    The input columns default to the shop schema's; another stream (e.g. a backtest's) names its own.

    Example: ``model = train_from_scratch(train_df, train_df["is_fraud"], TrainingConfig(seed=1))``.
    """
    import torch

    if features.empty:
        raise ValueError("cannot train on an empty features frame")
    y = _labels_array(labels, len(features), "train_from_scratch")
    if len(np.unique(y)) < 2:
        raise ValueError("train_from_scratch: labels contain a single class; need both fraud and non-fraud rows")
    wall_start, cpu_start = time.perf_counter(), time.process_time()
    device = select_device(config.device)
    preprocessor = Preprocessor.fit(features, numeric_columns, categorical_columns,
                                    max_categories=config.max_categories)
    x = preprocessor.transform(features)
    # fork_rng keeps the caller's global torch RNG untouched while seeding initialisation.
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(config.seed)
        network = _build_network(preprocessor.input_dim, config.hidden_sizes).to(device)
        max_steps = max(config.epochs * math.ceil(len(x) / config.batch_size), config.min_steps)
        steps, examples, loss = _run_steps(
            network, x, y, learning_rate=config.learning_rate, weight_decay=config.weight_decay,
            batch_size=config.batch_size, max_steps=max_steps, seed=config.seed, device=device,
        )
    weights = _weights_to_numpy(network)
    cost = estimate_compute_cost(time.perf_counter() - wall_start, time.process_time() - cpu_start, device, config,
                                 examples_processed=examples, n_parameters=_parameter_count(network))
    return TrainedModel(weights, preprocessor, config, "retrain", len(x), steps, loss, cost)


def _replay_sample(
    replay_features: pd.DataFrame | None,
    replay_labels: pd.Series | np.ndarray | None,
    n_recent: int,
    replay_fraction: float,
    seed: int,
) -> tuple[pd.DataFrame | None, np.ndarray | None]:
    """Draw replay rows so they make up ``replay_fraction`` of the fine-tune set (as far as available)."""
    if replay_features is None or replay_features.empty or replay_fraction == 0.0:
        return None, None
    if replay_labels is None:
        raise ValueError("fine_tune: replay_features given without replay_labels")
    y = _labels_array(replay_labels, len(replay_features), "fine_tune replay")
    wanted = math.ceil(n_recent * replay_fraction / (1.0 - replay_fraction))
    n_take = min(wanted, len(replay_features))
    chosen = np.sort(np.random.default_rng(seed).choice(len(replay_features), size=n_take, replace=False))
    return replay_features.iloc[chosen], y[chosen]


def fine_tune(
    base: TrainedModel,
    recent_features: pd.DataFrame,
    recent_labels: pd.Series | np.ndarray,
    replay_features: pd.DataFrame | None,
    replay_labels: pd.Series | np.ndarray | None,
    config: TrainingConfig,
) -> TrainedModel:
    """Warm-start from ``base``'s weights and train on recent data plus a replay sample.

    Uses ``config.fine_tune_learning_rate`` for at most ``config.fine_tune_max_steps`` steps. The base
    model's preprocessor (statistics and vocabularies) is kept, since its weights are tied to that
    encoding: categories the base never saw land in the unknown bucket. The base architecture is
    kept too, whatever ``config.hidden_sizes`` says.
    """
    import torch

    if recent_features.empty:
        raise ValueError("fine_tune: recent_features is empty")
    y_recent = _labels_array(recent_labels, len(recent_features), "fine_tune recent")
    wall_start, cpu_start = time.perf_counter(), time.process_time()
    device = select_device(config.device)
    tuned_config = replace(config, hidden_sizes=base.hidden_sizes)
    replay_x, replay_y = _replay_sample(replay_features, replay_labels, len(recent_features),
                                        config.replay_fraction, config.seed)
    preprocessor = base.preprocessor
    x = preprocessor.transform(recent_features)
    y = y_recent
    if replay_x is not None and replay_y is not None:
        x = np.concatenate([x, preprocessor.transform(replay_x)])
        y = np.concatenate([y, replay_y])
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(config.seed)
        network = _build_network(preprocessor.input_dim, base.hidden_sizes)
        _load_weights(network, base.weights)
        network.to(device)
        steps, examples, loss = _run_steps(
            network, x, y, learning_rate=config.fine_tune_learning_rate, weight_decay=config.weight_decay,
            batch_size=config.batch_size, max_steps=config.fine_tune_max_steps, seed=config.seed, device=device,
        )
    weights = _weights_to_numpy(network)
    cost = estimate_compute_cost(time.perf_counter() - wall_start, time.process_time() - cpu_start, device, config,
                                 examples_processed=examples, n_parameters=_parameter_count(network))
    n_replay = 0 if replay_y is None else len(replay_y)
    return TrainedModel(weights, preprocessor, tuned_config, "fine_tune", len(x), steps, loss, cost, n_replay)


def predict_proba(model: TrainedModel, features: pd.DataFrame) -> np.ndarray:
    """Fraud probability per row (float64, shape ``(len(features),)``).

    A plain numpy forward pass of the MLP (Linear -> ReLU ... -> Linear -> sigmoid): scoring
    needs no torch import, so drift reports and serving stay light.
    """
    x = model.preprocessor.transform(features)
    n_linear = len(model.hidden_sizes) + 1
    expected = {f"{2 * i}.{part}" for i in range(n_linear) for part in ("weight", "bias")}
    if set(model.weights) != expected:
        raise ValueError(f"weights do not match the architecture: expected {sorted(expected)}, "
                         f"got {sorted(model.weights)}")
    out = np.empty(len(x), dtype=np.float64)
    for start in range(0, len(x), _PREDICT_CHUNK_ROWS):
        hidden = x[start:start + _PREDICT_CHUNK_ROWS].astype(np.float32, copy=False)
        for i in range(n_linear):
            hidden = hidden @ model.weights[f"{2 * i}.weight"].T + model.weights[f"{2 * i}.bias"]
            if i < n_linear - 1:
                hidden = np.maximum(hidden, 0.0)
        logits = hidden[:, 0].astype(np.float64)
        # tanh form of the sigmoid: no overflow for large |logit|.
        out[start:start + len(logits)] = 0.5 * (1.0 + np.tanh(0.5 * logits))
    return out
