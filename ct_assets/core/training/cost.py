"""What a training run cost: wall and CPU time, device, estimated energy and CO2, and a deterministic count.

The deterministic unit is the standard estimate of training FLOPs (forward plus backward pass,
Kaplan et al. 2020)::

    train_gflops = 6 * n_parameters * examples_processed / 1e9

where ``examples_processed`` is the sum of mini-batch rows over every optimizer step. It is the same
for the same run on every machine and every repetition, unlike CPU seconds, so cost comparisons
(the backtest's front and targets, the policy's budget) use it.

Energy and CO2 are an explicit estimate, not a measurement::

    energy_kwh = (cpu_seconds * cpu_watts_per_thread + gpu_seconds * gpu_watts) / 3.6e6
    co2_kg     = energy_kwh * grid_kg_co2_per_kwh

codecarbon's offline tracker was measured on the target machines and not used: it cannot measure
there (no RAPL counters, unknown CPU model), so it falls back to the same formula (4 W per CPU
thread times the process's CPU share) plus a fixed RAM wattage, while its per-process hardware probe
costs ~1.6 s, longer than a typical fine-tune. ``TrainingConfig``'s defaults use codecarbon's
fallback of 4 W per thread and the IEA 2019 world-average grid intensity (0.475 kg CO2 per kWh).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any, Protocol


class EnergyConstants(Protocol):
    """The constants of the estimate (``TrainingConfig`` carries them)."""

    @property
    def cpu_watts_per_thread(self) -> float: ...

    @property
    def gpu_watts(self) -> float: ...

    @property
    def grid_kg_co2_per_kwh(self) -> float: ...


GIGA = 1e9
FLOPS_PER_PARAMETER_AND_EXAMPLE = 6  # 2 forward + 4 backward multiply-adds per weight and example
# Counted since the deterministic unit exists; a manifest written before it lacks both (unknown: None).
DETERMINISTIC_KEYS: tuple[str, ...] = ("examples_processed", "n_parameters")


def train_gflops(n_parameters: int, examples_processed: int) -> float:
    """Training GFLOPs of ``examples_processed`` examples through a network of ``n_parameters`` weights.

    >>> train_gflops(1_000, 50_000)
    0.3
    """
    return FLOPS_PER_PARAMETER_AND_EXAMPLE * n_parameters * examples_processed / GIGA


@dataclass(frozen=True)
class ComputeCost:
    """What one training run cost: time, device, estimated energy/emissions and the deterministic counts.

    ``examples_processed`` and ``n_parameters`` are None for a run stored before they were counted.
    """

    wall_seconds: float
    cpu_seconds: float
    device: str
    energy_kwh: float
    co2_kg: float
    estimation_method: str
    examples_processed: int | None = None
    n_parameters: int | None = None

    @property
    def train_gflops(self) -> float | None:
        """The deterministic training cost (module docstring), None when the counts are unknown."""
        if self.examples_processed is None or self.n_parameters is None:
            return None
        return train_gflops(self.n_parameters, self.examples_processed)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ComputeCost:
        """Inverse of :meth:`to_dict`. The deterministic counts are both present or both absent (a manifest
        written before they were counted: they load as None); any other missing or unknown key is an error."""
        expected = set(cls.__dataclass_fields__)
        required = expected - set(DETERMINISTIC_KEYS)
        counts = set(DETERMINISTIC_KEYS) & set(data)
        if not required <= set(data) <= expected or counts not in (set(), set(DETERMINISTIC_KEYS)):
            raise ValueError(f"compute cost dict needs the keys {sorted(required)} and either both or none of "
                             f"{list(DETERMINISTIC_KEYS)}, got {sorted(data)}")
        return cls(**data)


def estimate_compute_cost(wall_seconds: float, cpu_seconds: float, device: str, config: EnergyConstants, *,
                          examples_processed: int, n_parameters: int) -> ComputeCost:
    """Energy/CO2 estimate of a run, with its deterministic counts (formulas in the module docstring).

    Example: 10 CPU-seconds at 4 W/thread -> 40 J = 1.11e-5 kWh -> 5.3e-6 kg CO2 at 0.475 kg/kWh.
    """
    gpu_seconds = wall_seconds if device == "cuda" else 0.0
    energy_kwh = (cpu_seconds * config.cpu_watts_per_thread + gpu_seconds * config.gpu_watts) / 3.6e6
    method = (
        f"estimate: cpu_s x {config.cpu_watts_per_thread} W/thread"
        + (f" + gpu_s x {config.gpu_watts} W" if device == "cuda" else "")
        + f", x {config.grid_kg_co2_per_kwh} kg CO2/kWh"
    )
    return ComputeCost(
        wall_seconds=float(wall_seconds),
        cpu_seconds=float(cpu_seconds),
        device=device,
        energy_kwh=energy_kwh,
        co2_kg=energy_kwh * config.grid_kg_co2_per_kwh,
        estimation_method=method,
        examples_processed=int(examples_processed),
        n_parameters=int(n_parameters),
    )
