"""The knowledge engine's life: built once before the first request, rebuilt off the request path
once per change, and the organisers' loop: a console entry answers at once in this server, in a
second server on the same database, in `bot.py kb test` and `bot.py ask`, and after a restart."""
from __future__ import annotations

import logging
import os
import re
import shutil
import subprocess
import sys
import threading
import time

import pytest
import requests

from handlers import words
from knowledge.data import DATA_DIR
from knowledge.service import Knowledge
from simulator.client import WeChatClient
from storage import admins
from storage import knowledge as kb_store
from tests.conftest import APPID, ROOT, SECRET, TOKEN, LiveServer, free_port

COMMON = ["体检几月", "青春志愿服务谁牵头", "法治专研谁牵头", "集体生日会什么时候办", "疗休养什么时候",
          "宝山在哪个组", "奉贤牵头的是哪个共同体", "工会有哪些福利", "送温暖什么时候", "进博会保障谁牵头"]
PASSWORD = "correct-horse-1"
CSRF_RE = re.compile(r'name="csrf" value="([^"]+)"')
NEW_QUESTION = "城管青年夜跑团什么时候活动"
NEW_ANSWER = "城管青年夜跑团每周三晚上7点活动。"


def build_threads(caplog, rt) -> list[str]:
    """The threads that built an engine, in order (from the service's own log records); the
    watchers of earlier tests' apps, still catching up with their own databases, are not ours."""
    ours = rt.knowledge._watcher.ident
    return [r.threadName for r in caplog.records
            if r.name == "knowledge.service" and r.getMessage().startswith("knowledge built")
            and (r.threadName != "knowledge-watcher" or r.thread == ours)]


def ask_all(url: str, questions: list[str], connections: int = 20) -> list[str]:
    """Every question posted at once over `connections` connections, as WeChat's servers do."""
    replies: list[str] = []
    lock = threading.Lock()
    start = threading.Barrier(connections, timeout=60)

    def member(n: int) -> None:
        client = WeChatClient(TOKEN, url=url, timeout=30)
        start.wait()
        mine = [client.text(f"oLife{n:03d}x{i:04d}", q).text or ""
                for i, q in enumerate(questions[n::connections])]
        with lock:
            replies.extend(mine)

    threads = [threading.Thread(target=member, args=(n,)) for n in range(connections)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return replies


def server_env(settings, fake_api) -> dict:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("WECHAT_", "BOT_"))}
    env.update(WECHAT_TOKEN=TOKEN, WECHAT_APPID=APPID, WECHAT_SECRET=SECRET,
               WECHAT_API_BASE=fake_api.url, BOT_DATA_DIR=str(settings.data_dir),
               BOT_FAKE_NOW=settings.fake_now)
    return env


def start_server(env: dict) -> tuple[subprocess.Popen, str]:
    """`bot.py serve` in its own process; returns once the port accepts connections."""
    port = free_port()
    proc = subprocess.Popen([sys.executable, str(ROOT / "bot.py"), "serve", "--port", str(port),
                             "--no-scheduler"], cwd=ROOT, env=env, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"
    deadline = time.time() + 60
    while time.time() < deadline:
        try:
            requests.get(url + "/healthz", timeout=1)
            return proc, url
        except requests.RequestException:
            time.sleep(0.05)
    proc.kill()
    raise RuntimeError("bot.py serve did not start")


def stop(proc: subprocess.Popen) -> None:
    proc.terminate()
    proc.wait(timeout=15)


class ConsoleSession:
    """An admin in a browser: logs in through the form over HTTP, posts with the page's CSRF."""

    def __init__(self, url: str, name: str):
        self.url, self.http = url, requests.Session()
        token = self._csrf("/admin/login")
        resp = self.http.post(url + "/admin/login", data={"name": name, "password": PASSWORD,
                                                          "csrf": token}, allow_redirects=False)
        assert resp.status_code == 302, resp.text
        self.csrf = self._csrf("/admin/")

    def _csrf(self, path: str) -> str:
        return CSRF_RE.search(self.http.get(self.url + path, timeout=10).text).group(1)

    def post(self, path: str, data: dict) -> requests.Response:
        return self.http.post(self.url + path, data={"csrf": self.csrf, **data},
                              allow_redirects=False, timeout=60)


# --- built once, off the request path -----------------------------------------------------

def test_the_engine_is_built_before_the_first_request_and_requests_never_build(make_app, caplog):
    caplog.set_level(logging.DEBUG, logger="knowledge.service")
    app = make_app()
    rt = app.extensions["chengcheng"]
    assert rt.knowledge.builds == 1  # create_app built it: the server has not accepted anything
    engine = rt.knowledge.engine
    server = LiveServer(app).start()
    try:
        replies = ask_all(server.url, COMMON * 8)  # 80 questions on 20 connections, all at once
    finally:
        server.stop()
    assert len(replies) == 80 and words.PROCESSING not in replies
    assert all("——出处" in r for r in replies)
    assert rt.knowledge.builds == 1 and rt.knowledge.engine is engine
    assert build_threads(caplog, rt) == ["MainThread"]


def test_a_change_is_built_once_by_the_watcher_while_requests_keep_answering(make_app, caplog):
    caplog.set_level(logging.DEBUG, logger="knowledge.service")
    app = make_app()
    rt = app.extensions["chengcheng"]
    alias = "城管小伙伴过生日工会管不管"
    server = LiveServer(app).start()
    try:
        assert ask_all(server.url, [alias], connections=1)[0].startswith("没有找到")
        # another process (or the console of another server) adds a phrasing
        kb_store.add_alias(rt.db(), alias, "union-xm-shengrihui", "tester", rt.clock.now())
        replies = ask_all(server.url, (COMMON + [alias]) * 6)  # right after the change
        assert words.PROCESSING not in replies
        assert sum("——出处" in r for r in replies) >= len(COMMON) * 6  # old or new build, never none
        assert rt.knowledge.wait_until_current(timeout=30)
        assert rt.knowledge.builds == 2
        assert "集体生日会" in ask_all(server.url, [alias], connections=1)[0]
        # a second change: one more build, however many requests arrive meanwhile
        kb_store.add_alias(rt.db(), "体检是哪个月份", "union-xm-tijian", "tester", rt.clock.now())
        ask_all(server.url, COMMON * 4)
        assert rt.knowledge.wait_until_current(timeout=30)
        time.sleep(1.0)  # two more watcher rounds: nothing left to build
    finally:
        server.stop()
    assert rt.knowledge.builds == 3
    assert build_threads(caplog, rt) == ["MainThread", "knowledge-watcher", "knowledge-watcher"]


def test_a_console_refresh_and_the_watcher_build_one_change_once(make_app, caplog):
    caplog.set_level(logging.DEBUG, logger="knowledge.service")
    rt = make_app().extensions["chengcheng"]
    question = "城管小伙伴过生日工会管不管"  # only the alias answers it
    assert not rt.knowledge.engine.answer(question).confident
    kb_store.add_alias(rt.db(), question, "union-xm-shengrihui", "tester", rt.clock.now())
    refreshers = [threading.Thread(target=rt.knowledge.refresh) for _ in range(8)]
    for t in refreshers:
        t.start()
    for t in refreshers:
        t.join()
    assert rt.knowledge.wait_until_current(timeout=30)
    time.sleep(1.0)
    assert rt.knowledge.builds == 2
    assert "集体生日会" in rt.knowledge.engine.answer(question).text


def test_broken_files_keep_the_previous_build_and_are_not_rebuilt_until_changed(tmp_path, caplog):
    data = tmp_path / "knowledge"
    shutil.copytree(DATA_DIR, data)
    knowledge = Knowledge(data)
    engine = knowledge.load()
    broken = data / "entries" / "broken.yaml"
    broken.write_text("- id: [unclosed\n", encoding="utf-8")
    assert knowledge.refresh() is False and knowledge.refresh() is False
    assert knowledge.engine is engine and engine.answer("体检几月").confident
    assert caplog.text.count("reload failed") == 1  # the same broken state is not rebuilt again
    broken.write_text("- id: extra-mascot\n  question: 团建共同体的吉祥物叫什么\n"
                      "  answer: 测试用吉祥物叫城城。\n  source: alliance2025\n", encoding="utf-8")
    assert knowledge.refresh() is True and knowledge.builds == 2
    assert "城城" in knowledge.engine.answer("团建共同体的吉祥物叫什么").text


# --- the answer cache ---------------------------------------------------------------------

def test_cached_answers_are_dropped_with_their_build(make_app):
    rt = make_app().extensions["chengcheng"]
    first = rt.knowledge.engine.answer("体检几月")
    first.text = "被调用方改过的答案"
    first.candidates.clear()
    again = rt.knowledge.engine.answer("体检几月")  # callers get copies
    assert "9月" in again.text and again.candidates
    entry = rt.knowledge.engine.entry("union-xm-tijian")
    kb_store.save_entry(rt.db(), {"id": entry.id, "question": entry.question, "alts": entry.alts,
                                  "answer": "体检改在10月，由工会统一安排。", "source": entry.source},
                        "tester", rt.clock.now())
    rt.knowledge.refresh()
    assert "10月" in rt.knowledge.engine.answer("体检几月").text


def test_the_cache_never_serves_one_members_reply_to_another(make_app):
    app = make_app()
    wechat = WeChatClient(TOKEN, app=app)
    wechat.text("oMemberA0001", "绑定 张三 静安区城管执法局")
    wechat.text("oMemberB0001", "绑定 李四 虹口区城管执法局")
    assert "张三" in wechat.text("oMemberA0001", "我的信息").text
    reply = wechat.text("oMemberB0001", "我的信息").text
    assert "李四" in reply and "张三" not in reply
    # the same knowledge question, answered for each member's own unit, twice over
    for _ in range(2):
        mine = wechat.text("oMemberA0001", "我们单位在哪个共同体").text
        theirs = wechat.text("oMemberB0001", "我们单位在哪个共同体").text
        assert "青春社区治理" in mine and "青春法治专研" not in mine
        assert "青春法治专研" in theirs and "青春社区治理" not in theirs


# --- the organisers' loop, end to end -----------------------------------------------------

def test_a_console_entry_answers_at_once_here_in_a_second_server_in_the_cli_and_after_restart(
        make_app, settings, fake_api):
    app = make_app()
    rt = app.extensions["chengcheng"]
    admins.create(rt.db(), "管理员甲", _hash(PASSWORD), "admin", rt.clock.now())
    env = server_env(settings, fake_api)
    here = LiveServer(app).start()
    second, second_url = start_server(env)
    try:
        member_here = WeChatClient(TOKEN, url=here.url)
        member_there = WeChatClient(TOKEN, url=second_url)
        assert member_here.text("oRunner0001", NEW_QUESTION).text.startswith("没有找到")
        assert member_there.text("oRunner0002", NEW_QUESTION).text.startswith("没有找到")

        console = ConsoleSession(here.url, "管理员甲")
        saved = console.post("/admin/knowledge/entries/new", {
            "id": "org-yepao", "question": NEW_QUESTION, "answer": NEW_ANSWER,
            "source": "union2025", "alts": "夜跑团几点跑", "keywords": "夜跑"})
        assert saved.status_code == 302
        # this server: at once, no waiting (the save waited for the rebuild)
        assert NEW_ANSWER in member_here.text("oRunner0003", NEW_QUESTION).text
        assert NEW_ANSWER in member_here.text("oRunner0004", "夜跑团几点跑").text
        # a second server on the same database file: within a bounded wait
        started, reply = time.monotonic(), ""
        while NEW_ANSWER not in reply and time.monotonic() - started < 15:
            reply = member_there.text(f"oRunner1{int(time.monotonic() * 1000) % 10**6:06d}",
                                      NEW_QUESTION).text or ""
        assert NEW_ANSWER in reply, f"second server still answers {reply!r}"
        assert words.PROCESSING not in reply
        # one-shot commands on the same database
        cli_env = {**env, "PYTHONIOENCODING": "utf-8"}
        kb_test = subprocess.run([sys.executable, str(ROOT / "bot.py"), "kb", "test", NEW_QUESTION],
                                 cwd=ROOT, env=cli_env, capture_output=True, text=True, timeout=120)
        assert kb_test.returncode == 0, kb_test.stderr
        assert "org-yepao" in kb_test.stdout and NEW_ANSWER in kb_test.stdout
        ask = subprocess.run([sys.executable, str(ROOT / "bot.py"), "ask", "夜跑团几点跑"],
                             cwd=ROOT, env=cli_env, capture_output=True, text=True, timeout=120)
        assert ask.returncode == 0 and NEW_ANSWER in ask.stdout, ask.stderr
        # after a restart: answered by the first request, no warm-up
        stop(second)
        second, second_url = start_server(env)
        assert NEW_ANSWER in WeChatClient(TOKEN, url=second_url).text("oRunner0005",
                                                                      NEW_QUESTION).text
    finally:
        here.stop()
        stop(second)


def test_an_unanswered_question_made_an_alias_in_the_console_answers_at_once(make_app):
    app = make_app()
    rt = app.extensions["chengcheng"]
    admins.create(rt.db(), "管理员甲", _hash(PASSWORD), "admin", rt.clock.now())
    question = "年度健康福利几月"
    here = LiveServer(app).start()
    try:
        member = WeChatClient(TOKEN, url=here.url)
        assert member.text("oMemberA0001", question).text.startswith("没有找到")
        row = kb_store.unanswered(rt.db())[0]
        console = ConsoleSession(here.url, "管理员甲")
        saved = console.post(f"/admin/knowledge/unanswered/{row['id']}/alias",
                             {"entry_id_other": "union-xm-tijian"})
        assert saved.status_code == 302
        assert "9月" in member.text("oMemberA0002", question).text
    finally:
        here.stop()
    assert rt.knowledge.builds == 2


def _hash(password: str) -> str:
    from console.auth import hash_password

    return hash_password(password)


@pytest.mark.parametrize("command", [["kb", "test", "体检几月"], ["ask", "体检几月"]])
def test_one_shot_commands_answer_from_the_files_and_the_database(command, settings, fake_api):
    env = {**server_env(settings, fake_api), "PYTHONIOENCODING": "utf-8"}
    done = subprocess.run([sys.executable, str(ROOT / "bot.py"), *command], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert "9月" in done.stdout
    assert f"数据库：{settings.db_path}" in done.stderr
