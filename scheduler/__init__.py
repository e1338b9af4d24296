"""Scheduled work: planning reminders into the outbox and dispatching the outbox to WeChat."""
from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from runtime import Runtime
    from scheduler.service import SchedulerService


def start_in_process(rt: "Runtime") -> "SchedulerService":
    from scheduler.service import SchedulerService

    return SchedulerService(rt).start()
