"""What a training run cost: wall and CPU time, device, and estimated energy and CO2.

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


@dataclass(frozen=True)
class ComputeCost:
    """What one training run cost: time, device and estimated energy/emissions."""

    wall_seconds: float
    cpu_seconds: float
    device: str
    energy_kwh: float
    co2_kg: float
    estimation_method: str

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ComputeCost:
        expected = set(cls.__dataclass_fields__)
        if set(data) != expected:
            raise ValueError(f"compute cost dict needs exactly the keys {sorted(expected)}, got {sorted(data)}")
        return cls(**data)


def estimate_compute_cost(wall_seconds: float, cpu_seconds: float, device: str,
                          config: EnergyConstants) -> ComputeCost:
    """Energy/CO2 estimate of a run (formula in the module docstring).

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
    )
