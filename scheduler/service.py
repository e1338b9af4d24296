"""Exactly one scheduler: a lease row in the database decides which process runs the jobs.

APScheduler 3.x cannot share a job store between processes, so every process may start this,
but only the lease holder plans reminders and sends; the outbox is the source of truth and
APScheduler only keeps time. Web workers under a multi-worker server never start it.
"""
from __future__ import annotations

import logging
import os
import socket
import threading
import uuid
from datetime import timedelta
from typing import TYPE_CHECKING

from apscheduler.schedulers.background import BackgroundScheduler

from scheduler.dispatcher import Dispatcher
from storage import leases
from wechat.api import WeChatAPI

if TYPE_CHECKING:
    from runtime import Runtime

log = logging.getLogger(__name__)
LEASE = "scheduler"
LEASE_TTL = timedelta(seconds=30)
RENEW_SECONDS = 10
DISPATCH_IDLE_SECONDS = 1.0
PLAN_SECONDS = 60
MISFIRE_GRACE_SECONDS = 600  # a late job still runs within 10 minutes (APScheduler's default is 1 s)


class SchedulerService:
    def __init__(self, rt: "Runtime"):
        self.rt = rt
        self.owner = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:6]}"
        self.api = rt.service("wechat_api", lambda: WeChatAPI(rt.settings, rt.db, rt.clock.now))
        self.dispatcher = Dispatcher(rt, self.api)
        self.leader = False
        self._stop = threading.Event()
        self._aps = BackgroundScheduler(timezone=rt.settings.tz, job_defaults={
            "misfire_grace_time": MISFIRE_GRACE_SECONDS, "coalesce": True, "max_instances": 1})
        self._thread: threading.Thread | None = None

    def start(self) -> "SchedulerService":
        from scheduler import jobs

        self.renew()
        self._aps.add_job(self.renew, "interval", seconds=RENEW_SECONDS, id="lease")
        self._aps.add_job(self._as_leader(jobs.plan_all), "interval", seconds=PLAN_SECONDS,
                          id="plan", next_run_time=self.rt.clock.now())
        self._aps.start()
        self._thread = threading.Thread(target=self._dispatch_loop, name="dispatcher",
                                        daemon=True)
        self._thread.start()
        log.info("scheduler started as %s (leader=%s)", self.owner, self.leader)
        return self

    def stop(self) -> None:
        self._stop.set()
        self.rt.wake_dispatcher()
        self._aps.shutdown(wait=False)
        if self._thread:
            self._thread.join(timeout=10)
        if self.leader:
            leases.release(self.rt.db(), LEASE, self.owner)
        self.leader = False

    def renew(self) -> bool:
        was = self.leader
        self.leader = leases.acquire(self.rt.db(), LEASE, self.owner, LEASE_TTL,
                                     self.rt.clock.now())
        if self.leader != was:
            log.info("scheduler %s is %s", self.owner, "leader" if self.leader else "standby")
        return self.leader

    def _as_leader(self, job):
        def run():
            if self.leader:
                try:
                    job(self.rt)
                except Exception:
                    log.exception("job %s failed", job.__name__)
        run.__name__ = job.__name__
        return run

    def _dispatch_loop(self) -> None:
        while not self._stop.is_set():
            handled = 0
            if self.leader:
                try:
                    handled = self.dispatcher.run_once()
                except Exception:
                    log.exception("dispatch failed")
            if not handled:
                self.rt.wait_for_work(DISPATCH_IDLE_SECONDS)
