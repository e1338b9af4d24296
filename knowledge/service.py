"""The knowledge engine's life in one process: built once at start, rebuilt off the request path
when the knowledge changes (files, organiser edits, aliases, ingested passages), swapped whole.

Requests only read `Knowledge.engine`. One watcher thread per process looks for changes; a
console save calls `refresh()` itself and waits. Builds run under one lock and only for a
fingerprint not built yet, so one change is built once, whoever notices it first.
"""
from __future__ import annotations

import copy
import logging
import threading
import time
import weakref
from pathlib import Path
from typing import Callable

from knowledge.data import DATA_DIR, KnowledgeDataError
from knowledge.engine import Answer, Engine, fingerprint

log = logging.getLogger(__name__)

WATCH_SECONDS = 0.5  # how often each process looks for a change (files' mtimes, kb_version)


class CachedEngine(Engine):
    """An engine that answers the same text once per build: members ask the same few questions.

    Only `answer(text)` is cached (never a handler's reply, which may be personal); the cache
    belongs to this build and goes with it when the next build is swapped in.
    """

    def __init__(self, data_dir: Path = DATA_DIR, *, db: Callable | None = None,
                 threshold: float = 0.42, cache_size: int = 1024):
        super().__init__(data_dir, db=db, threshold=threshold)
        self.cache_size = cache_size
        self._answers: dict[str, Answer] = {}

    def answer(self, question: str) -> Answer:
        if self.cache_size <= 0:
            return super().answer(question)
        hit = self._answers.get(question)
        if hit is None:
            hit = super().answer(question)
            if len(self._answers) >= self.cache_size:
                self._answers.clear()
            self._answers[question] = hit
        return _copy(hit)


def _copy(answer: Answer) -> Answer:
    """A copy whose fields and lists the caller may change without touching the cached one."""
    out = copy.copy(answer)
    for name, value in vars(out).items():
        if isinstance(value, list):
            setattr(out, name, list(value))
    return out


class Knowledge:
    """Holds the current engine of a process; `start()` builds it and watches for changes."""

    def __init__(self, data_dir: Path = DATA_DIR, *, db: Callable | None = None,
                 threshold: float = 0.42, cache_size: int = 1024,
                 watch_seconds: float = WATCH_SECONDS):
        self.data_dir = Path(data_dir)
        self._db = db
        self.threshold = threshold
        self.cache_size = cache_size
        self.watch_seconds = watch_seconds
        self.builds = 0  # engines built by this process (tests count them)
        self._engine: CachedEngine | None = None
        self._stamp: tuple | None = None
        self._failed: tuple | None = None
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._watcher: threading.Thread | None = None

    @property
    def engine(self) -> Engine:
        """The current build. A process that never called `start()` (a one-shot command) builds
        it here, once; a server has built it before it accepts traffic."""
        engine = self._engine
        return engine if engine is not None else self.load()

    def load(self) -> Engine:
        """Build the engine if this process has none yet. Raises KnowledgeDataError on bad files."""
        with self._lock:
            if self._engine is None:
                stamp = fingerprint(self.data_dir, self._db)
                self._swap(self._build(), stamp)
            return self._engine

    def start(self) -> "Knowledge":
        """Build now, then rebuild in a background thread whenever the knowledge changes."""
        self.load()
        if self._watcher is None:
            self._watcher = threading.Thread(target=_watch, args=(weakref.ref(self), self._wake,
                                                                  self._stop, self.watch_seconds),
                                             name="knowledge-watcher", daemon=True)
            self._watcher.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._wake.set()

    def refresh(self) -> bool:
        """Rebuild and swap if the knowledge changed since the last build; True when swapped.

        Blocks the caller for the build (the watcher, or a console save that must answer its
        own phrasings at once); a second caller for the same change waits and builds nothing.
        """
        with self._lock:
            stamp = fingerprint(self.data_dir, self._db)
            if stamp == self._stamp or stamp == self._failed:
                return False
            try:
                engine = self._build()
            except KnowledgeDataError as exc:
                self._failed = stamp
                log.error("knowledge reload failed, keeping the previous build: %s", exc)
                return False
            self._swap(engine, stamp)
        log.info("knowledge reloaded: %d entries, %d passages", len(engine.corpus.entries),
                 len(engine.corpus.passages))
        return True

    def is_current(self) -> bool:
        """Whether the current build is of the knowledge as it is now."""
        return fingerprint(self.data_dir, self._db) in (self._stamp, self._failed)

    def wait_until_current(self, timeout: float) -> bool:
        """Wait (never build) until the watcher has caught up with every change made so far."""
        deadline = time.monotonic() + timeout
        while not self.is_current():
            if time.monotonic() >= deadline:
                return False
            time.sleep(0.05)
        return True

    def _build(self) -> CachedEngine:
        started = time.perf_counter()
        engine = CachedEngine(self.data_dir, db=self._db, threshold=self.threshold,
                              cache_size=self.cache_size)
        engine.owner = self
        log.debug("knowledge built in %.2f s", time.perf_counter() - started)
        return engine

    def _swap(self, engine: CachedEngine, stamp: tuple) -> None:
        self._engine, self._stamp, self._failed = engine, stamp, None
        self.builds += 1


def _watch(ref: "weakref.ref[Knowledge]", wake: threading.Event, stop: threading.Event,
           interval: float) -> None:
    """The watcher thread: ends when its Knowledge is stopped or garbage (an app gone)."""
    while not stop.is_set():
        wake.wait(interval)
        wake.clear()
        knowledge = ref()
        if knowledge is None or stop.is_set():
            return
        try:
            knowledge.refresh()
        except Exception:  # a locked or vanished database: keep serving the current build
            log.exception("knowledge watcher: could not check for changes")
        del knowledge
