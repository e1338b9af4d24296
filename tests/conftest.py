"""Fixtures build a real app on a temp SQLite file and talk to it the way WeChat does."""
from __future__ import annotations

import socket
import sys
import threading
import time
from dataclasses import replace
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from bot import create_app  # noqa: E402
from settings import Settings  # noqa: E402
from simulator.client import WeChatClient  # noqa: E402
from wechat.fake_api import FakeWeChatAPI  # noqa: E402

TOKEN = "testtoken"
AES_KEY = "abcdefghijklmnopqrstuvwxyz0123456789ABCDEFG"
APPID = "wxtestappid"
SECRET = "testsecret"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def fake_api():
    with FakeWeChatAPI(appid=APPID, secret=SECRET) as api:
        yield api


@pytest.fixture
def settings(tmp_path, fake_api) -> Settings:
    return Settings(wechat_token=TOKEN, wechat_aes_key=AES_KEY, wechat_appid=APPID,
                    wechat_secret=SECRET, wechat_api_base=fake_api.url,
                    data_dir=tmp_path / "data", fake_now="2026-11-21 10:00",
                    wechat_compat_mode=True).validated()  # the `wechat` fixture posts plaintext


@pytest.fixture
def make_app(settings):
    apps = []

    def make(**overrides):
        app = create_app(replace(settings, **overrides).validated() if overrides else settings)
        apps.append(app)
        return app

    yield make
    for app in apps:
        app.extensions["chengcheng"].executor.shutdown(wait=True)
    from storage import close_thread_connections

    close_thread_connections()  # this thread's connections to the test's database files


@pytest.fixture
def app(make_app):
    return make_app()


@pytest.fixture
def rt(app):
    return app.extensions["chengcheng"]


@pytest.fixture
def wechat(app) -> WeChatClient:
    """Posts signed plaintext XML into the app, as WeChat does."""
    return WeChatClient(TOKEN, app=app)


@pytest.fixture
def wechat_aes(app) -> WeChatClient:
    return WeChatClient(TOKEN, app=app, aes_key=AES_KEY, appid=APPID)


@pytest.fixture
def db(rt):
    return rt.db()


class LiveServer:
    """The app on waitress on a loopback port, in a thread of this process."""

    def __init__(self, app):
        from waitress.server import create_server

        self.port = free_port()
        self.server = create_server(app, host="127.0.0.1", port=self.port, threads=32,
                                    connection_limit=500)
        self.url = f"http://127.0.0.1:{self.port}"
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    def start(self) -> "LiveServer":
        self.thread.start()
        deadline = time.time() + 5
        while time.time() < deadline:
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=0.2).close()
                return self
            except OSError:
                time.sleep(0.02)
        raise RuntimeError("live server did not start")

    def stop(self) -> None:
        self.server.close()
        self.server.task_dispatcher.shutdown()  # its threads hold database connections


@pytest.fixture
def live_server(app):
    server = LiveServer(app).start()
    yield server
    server.stop()


def dispatch_all(rt) -> None:
    """Send everything due in the outbox now (what the scheduler's dispatcher does)."""
    from scheduler.dispatcher import Dispatcher
    from wechat.api import WeChatAPI

    api = rt.service("wechat_api", lambda: WeChatAPI(rt.settings, rt.db, rt.clock.now))
    Dispatcher(rt, api).drain()


def _logged_in(app, rt, name: str, role: str):
    """The console (tests/test_console.py's Console), logged in through its form."""
    from tests.test_console import Console, add_admin

    add_admin(rt, name, role)
    c = Console(app)
    assert c.login(name).status_code == 302
    return c


@pytest.fixture
def organiser(app, rt):
    return _logged_in(app, rt, "组织者乙", "organiser")


@pytest.fixture
def console(app, rt):
    return _logged_in(app, rt, "管理员甲", "admin")
