"""The policy file `ct tune` writes: the user's own policy.toml, its comments and layout kept, with the
chosen values substituted in place and a header comment saying how they were chosen.

>>> print(tuned_policy_text("[labels]\\n# why\\naccumulated_trigger = 20000\\n", {"labels.accumulated_trigger": 5000},
...                         ["chosen by ct tune"]))
# chosen by ct tune
<BLANKLINE>
[labels]
# why
accumulated_trigger = 5000
<BLANKLINE>
"""

from __future__ import annotations

import json
import os
import re
import tomllib
from collections.abc import Mapping, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

from ct_assets.core.backtest.tuning import TuningReport
from ct_assets.core.decision.policy_config import PolicyConfig, parse_policy_config

_TABLE = re.compile(r"^\s*\[([A-Za-z0-9_]+)\]\s*(#.*)?$")


def toml_value(value: Any) -> str:
    """``value`` written as TOML (booleans, numbers, strings and lists of them)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return repr(value)
    if isinstance(value, str):
        return json.dumps(value)
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(toml_value(item) for item in value) + "]"
    raise ValueError(f"cannot write {value!r} as a policy value")


def tuned_policy_text(base_text: str, values: Mapping[str, Any], header: Sequence[str]) -> str:
    """``base_text`` with each dotted key's value replaced on its own line, under ``header`` comment lines.

    Raises ValueError when a key has no ``name = value`` line in its table.
    """
    lines = base_text.splitlines()
    table = ""
    found: set[str] = set()
    for index, line in enumerate(lines):
        match = _TABLE.match(line)
        if match:
            table = match.group(1)
            continue
        for key, value in values.items():
            key_table, _, name = key.partition(".")
            if key_table == table and re.match(rf"^\s*{re.escape(name)}\s*=", line):
                lines[index] = f"{line.split('=', 1)[0].rstrip()} = {toml_value(value)}"
                found.add(key)
    missing = sorted(set(values) - found)
    if missing:
        raise ValueError(f"the policy file has no line for {missing[0]!r} to write the tuned value on")
    return "".join(f"# {line}\n" for line in header) + "\n" + "\n".join(lines) + "\n"


def tuning_header(report: TuningReport) -> list[str]:
    """How the policy was chosen: stream, seeds, budget and the figures on the tuned and held-out parts."""
    if report.chosen is None:
        raise ValueError("no candidate policy fits the budget: nothing to write")
    tuned = report.score(report.chosen.name)
    baseline = report.score("always_retrain")
    lines = [(f"Tuned by `ct tune` on stream {report.stream_name!r}, seeds {list(report.seeds)}, compute budget "
             f"{report.budget:.0%} of always_retrain's."),
             f"Chosen: {report.chosen.describe()}",
             (f"First {report.tuned_batches} batches: mean {report.metric} {tuned.mean_metric:.4f} at "
             f"{tuned.compute_share:.1%} of always_retrain's compute (always_retrain {baseline.mean_metric:.4f})."),
             ]
    if report.held_out:
        held, held_base = report.score("ct_policy", held_out=True), report.score("always_retrain", held_out=True)
        lines.append(f"Held-out last {report.held_out_batches} batches: mean {report.metric} {held.mean_metric:.4f} "
                     f"at {held.compute_share:.1%} (always_retrain {held_base.mean_metric:.4f}).")
    lines.append("A proposal: review it, then copy it over the policy file to apply it.")
    return lines


def write_tuned_policy(report: TuningReport, base_text: str, path: str | Path) -> tuple[Path, PolicyConfig]:
    """Write the chosen policy to ``path`` (atomically); return the path and the policy the file loads as.

    Raises ValueError when no candidate was chosen or the written file would not load back as chosen.
    """
    if report.chosen is None:
        raise ValueError("no candidate policy fits the budget: nothing to write")
    text = tuned_policy_text(base_text, dict(report.chosen.assignment), tuning_header(report))
    written = parse_policy_config(tomllib.loads(text))
    # policy_version hashes the file's own spelling of numbers (3600 vs 3600.0), so compare the values.
    if replace(written, policy_version="") != replace(report.chosen.policy, policy_version=""):
        raise ValueError("the tuned policy file does not load back as the chosen policy")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f".{path.name}.tmp")
    temporary.write_text(text, encoding="utf-8")
    os.replace(temporary, path)
    return path, written
