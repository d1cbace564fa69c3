"""The human an escalation reaches in a backtest: a configurable, deterministic response.

Live, ``escalate_to_human`` raises an alert and a person decides. A replay models that person as one of:

* ``"approve_after:N"``: approves the escalated decision's recommended action (its ``wanted_action``, what
  the evidence asked for before the label, budget and debt constraints) N batches later (0: at once);
  while a question is open, further escalations wait for the same answer;
* ``"never"``: never answers, so an escalation changes nothing (but is counted and reported).

>>> HumanResponse.parse("approve_after:2").approve_after, HumanResponse.parse("never").approve_after
(2, None)
"""

from __future__ import annotations

from dataclasses import dataclass

from ct_assets.core.decision.policy import Evidence

NEVER = "never"
APPROVE_AFTER = "approve_after:"


@dataclass(frozen=True)
class HumanResponse:
    """How the modelled human answers an escalation; ``approve_after`` None: never."""

    approve_after: int | None

    @classmethod
    def parse(cls, spec: str) -> HumanResponse:
        if spec == NEVER:
            return cls(None)
        count = spec.removeprefix(APPROVE_AFTER)
        if not spec.startswith(APPROVE_AFTER) or not count.isdigit():
            raise ValueError(f"human must be {NEVER!r} or '{APPROVE_AFTER}N' with N >= 0 batches, got {spec!r}")
        return cls(int(count))


@dataclass(frozen=True)
class OpenEscalation:
    """An escalation awaiting the human's answer: asked after batch ``asked_at``, recommending ``action``."""

    asked_at: int
    action: str
    evidence: Evidence | None
