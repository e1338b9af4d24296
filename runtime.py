"""The app's shared parts, built once per app: settings, clock, router, worker threads, knowledge.

Per-message state never lives here; it lives in the database.
"""
from __future__ import annotations

import logging
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Callable

from sqlite_utils import Database

from clock import Clock
from knowledge.service import Knowledge
from settings import Settings
from storage import kv, migrate, open_db
from wechat import menu

log = logging.getLogger(__name__)
HANDLER_THREADS = 16


class Runtime:
    # Set by the command line: told which database each Runtime opened and whether it was new,
    # so every command says which database it used.
    on_open: Callable[[Path, bool], None] | None = None

    def __init__(self, settings: Settings):
        from handlers import build_router

        self.settings = settings
        self.clock = Clock(settings.fixed_now())
        created = not settings.db_path.exists()
        settings.data_dir.mkdir(parents=True, exist_ok=True)
        db = self.db()
        migrate(db)
        if Runtime.on_open is not None:
            Runtime.on_open(settings.db_path, created)
        self.dev_token_created = False
        if settings.wechat_token:
            self.token = settings.wechat_token
        else:
            self.token, self.dev_token_created = kv.file_secret(
                db, settings.data_dir, "dev_wechat_token")
        self.secret_key = settings.secret_key or kv.file_secret(
            db, settings.data_dir, "console_secret_key", nbytes=32, keep_db_value=False)[0]
        self.menu = menu.load()
        self.menu_keys = menu.commands(self.menu)
        self.router = build_router()
        self.knowledge = Knowledge(db=self.db, threshold=settings.confidence_threshold,
                                   cache_size=settings.answer_cache)
        self.executor = ThreadPoolExecutor(HANDLER_THREADS, thread_name_prefix="handler")
        self._wake = threading.Event()
        self._services: dict = {}

    def db(self) -> Database:
        """This thread's connection."""
        return open_db(self.settings.db_path)

    def wake_dispatcher(self) -> None:
        """Tell the outbox dispatcher (if it runs in this process) that something is due now."""
        self._wake.set()

    def wait_for_work(self, timeout: float) -> bool:
        woke = self._wake.wait(timeout)
        self._wake.clear()
        return woke

    def service(self, name: str, factory):
        """A lazily built shared service (the knowledge engine, the WeChat API client)."""
        if name not in self._services:
            self._services[name] = factory()
        return self._services[name]

    @property
    def using_dev_token(self) -> bool:
        return not self.settings.wechat_token
