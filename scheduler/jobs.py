"""What the scheduler plans: activity reminders and recurring calendar reminders, into the outbox."""
from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from runtime import Runtime


def plan_all(rt: "Runtime") -> None:
    """Every planning job, in order (each is idempotent: outbox keys are unique)."""
