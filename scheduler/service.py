"""Exactly one scheduler: a lease row in the database decides which process runs the jobs.

APScheduler 3.x cannot share a job store between processes, so every process may start this,
but only the lease holder plans reminders and sends; the outbox is the source of truth and
APScheduler only keeps time. Web workers under a multi-worker server never start it.
Even two processes that both believe they lead cannot send a row twice: rows are claimed
in a write transaction before sending.
"""
from __future__ import annotations

import logging
import threading
import time
from datetime import datetime, timedelta
from typing import TYPE_CHECKING

from apscheduler.schedulers.background import BackgroundScheduler

from scheduler.dispatcher import Dispatcher
from storage import claims, deliveries, leases
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
    """Lease renewal, planning and dispatching for one process; `start()` / `stop()`."""

    def __init__(self, rt: "Runtime", *, lease_ttl: timedelta = LEASE_TTL,
                 renew_seconds: float = RENEW_SECONDS, plan_seconds: float = PLAN_SECONDS):
        self.rt = rt
        self.owner = claims.begin()  # storage/claims.py tells a dead owner from a slow one
        self.lease_ttl, self.renew_seconds, self.plan_seconds = lease_ttl, renew_seconds, \
            plan_seconds
        self.api = rt.service("wechat_api", lambda: WeChatAPI(rt.settings, rt.db, rt.clock.now))
        self.dispatcher = Dispatcher(rt, self.api, owner=self.owner, keep_going=self._may_send)
        self._leader_until = 0.0  # monotonic time the lease surely lasts until
        self._stop = threading.Event()
        self._planned = threading.Event()
        self._plan_lock = threading.Lock()
        self._aps = BackgroundScheduler(timezone=rt.settings.tz, job_defaults={
            "misfire_grace_time": MISFIRE_GRACE_SECONDS, "coalesce": True, "max_instances": 1})
        self._thread: threading.Thread | None = None

    @property
    def leader(self) -> bool:
        """Holding a lease renewed recently enough that it cannot have run out."""
        return time.monotonic() < self._leader_until

    def start(self) -> "SchedulerService":
        # the lease job runs every few seconds: APScheduler's per-run INFO lines would drown the log
        logging.getLogger("apscheduler.executors.default").setLevel(logging.WARNING)
        self.renew()
        # APScheduler keeps real time; BOT_FAKE_NOW only shifts what the jobs consider "now".
        self._aps.add_job(self.renew, "interval", seconds=self.renew_seconds, id="lease")
        self._aps.add_job(self.plan, "interval", seconds=self.plan_seconds, id="plan",
                          next_run_time=datetime.now(self.rt.settings.tz))
        self._aps.start()
        self._thread = threading.Thread(target=self._dispatch_loop, name="dispatcher",
                                        daemon=True)
        self._thread.start()
        log.info("scheduler started as %s (%s)", self.owner,
                 "leader" if self.leader else "standby")
        return self

    def stop(self) -> None:
        """Stop sending (claims not yet sent are handed back) and give up the lease."""
        self._stop.set()
        self.rt.wake_dispatcher()
        if self._aps.running:
            self._aps.shutdown(wait=False)
        if self._thread:
            self._thread.join(timeout=30)
        if self.leader:
            leases.release(self.rt.db(), LEASE, self.owner)
        self._leader_until = 0.0
        claims.end(self.owner)

    def renew(self) -> bool:
        """Take or keep the lease; a predecessor that died on this host is replaced at once."""
        db = self.rt.db()
        now = self.rt.clock.now()
        was = self.leader
        started = time.monotonic()
        got = leases.acquire(db, LEASE, self.owner, self.lease_ttl, now)
        if not got:
            holder = leases.holder(db, LEASE, now)
            if holder and claims.judge(holder) is True and \
                    leases.take_over(db, LEASE, holder, self.owner, self.lease_ttl, now):
                freed = deliveries.release_claims(db, holder, now)
                log.warning("scheduler %s took over from dead %s (%d claimed messages freed)",
                            self.owner, holder, freed)
                got = True
        # keep a margin: the lease is trusted for a little less than it lasts
        self._leader_until = started + self.lease_ttl.total_seconds() * 0.8 if got else 0.0
        if got and not was:
            log.info("scheduler %s is now the leader", self.owner)
            self._planned.clear()
            self.rt.wake_dispatcher()
        elif was and not got:
            log.info("scheduler %s is on standby", self.owner)
        return got

    def plan(self) -> None:
        """Plan reminders into the outbox (leader only); errors are logged, never raised."""
        from scheduler import jobs

        if not self.leader:
            return
        with self._plan_lock:
            try:
                jobs.plan_all(self.rt)
            except Exception:
                log.exception("planning failed")
            finally:
                self._planned.set()
        self.rt.wake_dispatcher()

    def _may_send(self) -> bool:
        return self.leader and not self._stop.is_set()

    def _dispatch_loop(self) -> None:
        while not self._stop.is_set():
            handled = 0
            if self.leader:
                if not self._planned.is_set():
                    self.plan()  # a new leader plans first: missed reminders get sorted out
                try:
                    handled = self.dispatcher.run_once()
                except Exception:
                    log.exception("dispatch failed")
            if not handled:
                self.rt.wait_for_work(DISPATCH_IDLE_SECONDS)
