"""200 members sign up at once for 30 places, through the real webhook on real servers.

Capacity must hold and the waitlist must be first come, first served, whether the requests
land on many threads of one server or on several server processes sharing the SQLite file.
The NEGATIVE CONTROL at the end runs the same load with the guard switched off
(`activities.service.GUARD = False`): it must oversell, which proves the race is real.
"""
from __future__ import annotations

import logging

import pytest

from activities import service
from bench.signup_load import (Figures, ThreadedServer, hammer, prepare, rush_apart,
                               start_servers, stop_servers)
from tests.conftest import TOKEN

MEMBERS = 200
CAPACITY = 30
TEXT = "报名 进博会青年突击队集训"


@pytest.fixture
def live_server(app):
    """Waitress in this process, like conftest's live_server, but polling with poll(): the
    burst opens 400 sockets here (both ends), which select() cannot watch past fd 1024."""
    with ThreadedServer(app) as server:
        yield server


@pytest.fixture(autouse=True)
def quiet_waitress_queue():
    """Waitress warns 'Task queue depth' for every queued request under this load."""
    logger = logging.getLogger("waitress.queue")
    level = logger.level
    logger.setLevel(logging.ERROR)
    yield
    logger.setLevel(level)


def report(capsys, label: str, figures: Figures, extra: str = "") -> None:
    with capsys.disabled():
        print(f"\n[{label}] {figures.line()}{extra}")


def assert_exact(db, activity_id: int, figures: Figures) -> None:
    """30 confirmed, 170 waitlisted numbered 1..170 in the order of their rows, no errors."""
    assert [(o.openid, o.status, o.text, o.error) for o in figures.errors] == []
    assert figures.requests == MEMBERS
    assert figures.confirmed == CAPACITY
    assert figures.waitlisted == MEMBERS - CAPACITY
    rows = service.signup_list(db, activity_id)
    assert len(rows) == MEMBERS and len({r["openid"] for r in rows}) == MEMBERS
    confirmed = [r["openid"] for r in rows if r["status"] == "confirmed"]
    waitlisted = [r["openid"] for r in rows if r["status"] == "waitlisted"]
    assert len(confirmed) == CAPACITY
    assert set(confirmed) == {o.openid for o in figures.outcomes if o.confirmed}
    told = {o.openid: o.position for o in figures.outcomes if o.position is not None}
    assert [told[openid] for openid in waitlisted] == list(range(1, MEMBERS - CAPACITY + 1))
    # first come, first served: every confirmed row was written before every waitlisted one
    ids = {r["openid"]: r["id"] for r in rows}
    assert max(ids[o] for o in confirmed) < min(ids[o] for o in waitlisted)
    activity = service.get_activity(db, activity_id)
    assert (activity["confirmed"], activity["waitlisted"]) == (CAPACITY, MEMBERS - CAPACITY)


def test_200_members_30_places_many_threads(live_server, rt, db, capsys):
    activity_id, openids = prepare(db, rt.clock.now(), rt.settings.tz, MEMBERS, CAPACITY)
    figures = hammer([live_server.url], TOKEN, openids, TEXT)
    report(capsys, "1 server, 200 threads", figures)
    assert_exact(db, activity_id, figures)
    assert figures.percentile(99) < rt.settings.reply_budget


def test_200_members_30_places_over_wechats_keep_alive_connections(live_server, rt, db,
                                                                     capsys):
    """The burst as WeChat sends it (bench/signup_load.py's default): all queued at once,
    twenty keep-alive connections from another process, one request per message."""
    activity_id, openids = prepare(db, rt.clock.now(), rt.settings.tz, MEMBERS, CAPACITY)
    figures = rush_apart([live_server.url], TOKEN, openids, TEXT, connections=20)
    report(capsys, "1 server, 20 keep-alive connections", figures)
    assert_exact(db, activity_id, figures)


def test_200_members_30_places_three_server_processes(rt, db, settings, capsys):
    activity_id, openids = prepare(db, rt.clock.now(), rt.settings.tz, MEMBERS, CAPACITY)
    servers = start_servers(3, settings.data_dir, TOKEN)
    try:
        figures = hammer([url for _, url in servers], TOKEN, openids, TEXT)
    finally:
        stop_servers(servers)
    report(capsys, "3 server processes, one SQLite file", figures)
    assert_exact(db, activity_id, figures)
    assert figures.percentile(99) < rt.settings.reply_budget


def test_negative_control_without_the_guard_oversells(live_server, rt, db, capsys, monkeypatch):
    """NEGATIVE CONTROL: the guard off (count read and row written in separate transactions)
    lets concurrent requests all see a free place. This test passing means the race is real
    and the tests above would catch an unguarded sign_up."""
    monkeypatch.setattr(service, "GUARD", False)
    activity_id, openids = prepare(db, rt.clock.now(), rt.settings.tz, MEMBERS, CAPACITY)
    figures = hammer([live_server.url], TOKEN, openids, TEXT)
    confirmed = service.get_activity(db, activity_id)["confirmed"]
    report(capsys, "NEGATIVE CONTROL, guard off", figures,
           f" -> {confirmed} confirmed for {CAPACITY} places (oversold by {confirmed - CAPACITY})")
    assert confirmed > CAPACITY
