"""The /wechat webhook, exactly as WeChat's servers call it."""
from __future__ import annotations

import threading
import time
from datetime import timedelta

import pytest
import requests

from clock import to_db
from handlers import words
from handlers.router import Reply, Route
from simulator.client import WeChatClient, event_xml, media_xml, text_xml
from storage import deliveries, members, messages
from tests.conftest import AES_KEY, APPID, TOKEN, dispatch_all
from wechat import crypto


def handle_first(rt, fn, name: str) -> None:
    """A test handler tried before all the bot's own."""
    rt.router.routes.insert(0, Route(fn, name))


def count(db, table: str) -> int:
    return db.execute(f"SELECT count(*) FROM {table}").fetchone()[0]


# --- GET verification --------------------------------------------------------------------

def test_get_echoes_echostr_when_signed(app, wechat):
    query = wechat.signed_query()
    resp = app.test_client().get("/wechat", query_string={**query, "echostr": "hello123"})
    assert resp.status_code == 200
    assert resp.get_data(as_text=True) == "hello123"


@pytest.mark.parametrize("bad,status", [
    ({"signature": "0" * 40}, 403),  # forged
    ({"signature": ""}, 400),  # missing
    ({"timestamp": "1"}, 403),  # signed for another time
])
def test_get_with_bad_signature_is_refused(app, wechat, bad, status):
    query = {**wechat.signed_query(), "echostr": "x", **bad}
    resp = app.test_client().get("/wechat", query_string=query)
    assert resp.status_code == status
    assert "Traceback" not in resp.get_data(as_text=True)


def test_get_without_parameters_is_400(app):
    assert app.test_client().get("/wechat").status_code == 400


# --- POST, plaintext ----------------------------------------------------------------------

def test_text_message_gets_a_text_reply_and_is_logged(wechat, db):
    result = wechat.text("oMember001", "帮助", msg_id=1001)
    assert result.status == 200
    assert "诚城青年助手" in result.text
    row = messages.get(db, "msg:1001")
    assert row["status"] == "done" and row["openid"] == "oMember001"
    assert row["reply"] == result.text and row["handler"] and row["latency_ms"] >= 0
    assert members.get(db, "oMember001")["last_seen"]


def test_forged_signature_is_403_before_the_body_is_parsed(app, wechat, db):
    query = {**wechat.signed_query(), "signature": "f" * 40}
    resp = app.test_client().post("/wechat", query_string=query, data=b"<xml>not even",
                                  content_type="text/xml")
    assert resp.status_code == 403
    assert count(db, "messages") == 0


@pytest.mark.parametrize("body", [
    b"<xml><FromUserName>x</FromUserName",  # truncated
    b"plain words",
    b"<root><a>1</a></root>",  # not <xml>
    b"<xml><FromUserName>u</FromUserName><MsgType>text</MsgType></xml>",  # no CreateTime
    b'<?xml version="1.0"?><!DOCTYPE x [<!ENTITY a "aaaa">]><xml><Content>&a;</Content></xml>',
    "<xml><Content>坏</Content>".encode("gbk"),
])
def test_bad_bodies_are_4xx_and_nothing_is_recorded(app, wechat, db, body):
    resp = app.test_client().post("/wechat", query_string=wechat.signed_query(), data=body,
                                  content_type="text/xml")
    assert 400 <= resp.status_code < 500
    assert "Traceback" not in resp.get_data(as_text=True)
    assert count(db, "messages") == 0
    # and the service keeps serving
    assert wechat.text("oAfterBad01", "帮助").status == 200


def test_body_over_64kb_is_413(app, wechat, db):
    huge = text_xml("oMember001", "字" * 30000).encode()
    assert len(huge) > 64 * 1024
    resp = app.test_client().post("/wechat", query_string=wechat.signed_query(), data=huge,
                                  content_type="text/xml")
    assert resp.status_code == 413
    assert count(db, "messages") == 0


def test_refusals_and_failures_read_as_the_apps_error_pages(app, wechat, db, monkeypatch):
    """/wechat is served without Flask's request context, but its refusals still come from
    the app's error handlers: same status, same words, no traceback."""
    client = app.test_client()
    forged = client.post("/wechat", query_string={**wechat.signed_query(), "signature": "f" * 40},
                         data=b"<xml/>", content_type="text/xml")
    assert (forged.status_code, forged.get_data(as_text=True)) == (403, "403 签名校验失败")
    bad = client.post("/wechat", query_string=wechat.signed_query(), data=b"plain words",
                      content_type="text/xml")
    assert bad.status_code == 400
    assert bad.get_data(as_text=True) == "400 请求有误：无法解析的消息：malformed XML"

    def broken(rt, msg, signed=None):
        raise RuntimeError("boom")

    from handlers import pipeline
    monkeypatch.setattr(pipeline, "handle", broken)
    crashed = client.post("/wechat", query_string=wechat.signed_query(),
                          data=text_xml("oMember001", "帮助").encode(), content_type="text/xml")
    assert (crashed.status_code, crashed.get_data(as_text=True)) == (500, "500 服务器内部错误")


# --- message types -------------------------------------------------------------------------

@pytest.mark.parametrize("msg_type,fields,expected", [
    ("image", {"PicUrl": "http://x/y.jpg", "MediaId": "m1"}, words.IMAGE),
    ("location", {"Location_X": "31.2", "Location_Y": "121.4", "Scale": "15",
                  "Label": "上海"}, words.LOCATION),
    ("link", {"Title": "t", "Description": "d", "Url": "http://x"}, words.LINK),
    ("video", {"MediaId": "m", "ThumbMediaId": "t"}, words.VIDEO),
    ("shortvideo", {"MediaId": "m", "ThumbMediaId": "t"}, words.VIDEO),
    ("voice", {"MediaId": "m", "Format": "amr"}, words.VOICE_UNHEARD),
])
def test_media_messages_get_a_short_helpful_reply(wechat, msg_type, fields, expected):
    result = wechat.post_xml(media_xml("oMember001", msg_type, fields))
    assert result.status == 200 and result.text == expected


def test_voice_with_recognition_is_answered_like_text(wechat):
    result = wechat.post_xml(media_xml("oMember001", "voice", {
        "MediaId": "m", "Format": "amr", "Recognition": "帮助"}))
    assert "诚城青年助手" in result.text


def test_unknown_message_type_gets_success(wechat, db):
    result = wechat.post_xml(media_xml("oMember001", "hologram", {"Beam": "1"}))
    assert result.status == 200 and result.body == "success"


def test_unknown_event_gets_success(wechat):
    result = wechat.post_xml(event_xml("oMember001", "templatesendjobfinish"))
    assert result.status == 200 and result.body == "success"


def test_subscribe_welcomes_and_unsubscribe_marks_without_reply(wechat, db):
    welcome = wechat.event("oFollower1", "subscribe", create_time=1700000000)
    assert welcome.text == words.WELCOME
    assert members.get(db, "oFollower1")["subscribed"] == 1
    gone = wechat.event("oFollower1", "unsubscribe", create_time=1700000100)
    assert gone.body == "success"
    assert members.get(db, "oFollower1")["subscribed"] == 0
    back = wechat.event("oFollower1", "subscribe", create_time=1700000200)
    assert back.text == words.WELCOME and members.get(db, "oFollower1")["subscribed"] == 1


def test_menu_click_runs_the_command_behind_its_key(wechat, rt):
    assert rt.menu_keys["HELP"] == "帮助"
    result = wechat.event("oMember001", "CLICK", "HELP")
    assert "诚城青年助手" in result.text
    unknown = wechat.event("oMember001", "CLICK", "NO_SUCH_KEY", create_time=1700000001)
    assert unknown.text == words.CAPABILITIES


def test_view_and_scan_events(wechat):
    assert wechat.event("oMember001", "VIEW", "https://example.org").body == "success"
    assert wechat.event("oMember001", "SCAN", "123", create_time=1700000002).text == words.SCAN


# --- retries ---------------------------------------------------------------------------------

def test_retry_of_same_msgid_gets_same_reply_and_one_log_row(wechat, db):
    first = wechat.text("oMember001", "帮助", msg_id=777)
    again = wechat.text("oMember001", "帮助", msg_id=777)
    assert first.text == again.text
    assert count(db, "messages") == 1


def test_event_retry_deduped_by_openid_and_createtime(wechat, db):
    wechat.event("oFollower2", "subscribe", create_time=1700001000)
    wechat.event("oFollower2", "subscribe", create_time=1700001000)
    assert count(db, "messages") == 1


def test_three_concurrent_retries_run_the_handler_once(app, rt, db):
    calls = []
    started = threading.Event()

    def slow_counter(msg, ctx):
        if msg.text != "计数":
            return None
        calls.append(msg.msg_id)
        started.set()
        time.sleep(0.5)
        return Reply(f"第{len(calls)}次")

    handle_first(rt, slow_counter, "test.slow")
    client = WeChatClient(TOKEN, app=app)
    xml = text_xml("oMember001", "计数", msg_id=4242)
    results = []
    threads = [threading.Thread(target=lambda: results.append(client.post_xml(xml)))
               for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert calls == ["4242"]
    assert [r.text for r in results] == ["第1次"] * 3
    assert count(db, "messages") == 1


# --- the 5-second budget ------------------------------------------------------------------------

def test_slow_handler_is_cut_off_and_the_answer_is_pushed(make_app, fake_api):
    app = make_app(reply_budget=0.3)
    rt = app.extensions["chengcheng"]

    def slow(msg, ctx):
        if msg.text != "慢":
            return None
        time.sleep(0.8)
        return Reply("慢慢的完整答复")

    handle_first(rt, slow, "test.slow")
    client = WeChatClient(TOKEN, app=app)
    t0 = time.monotonic()
    result = client.text("oMember001", "慢", msg_id=9001)
    assert time.monotonic() - t0 < 0.7
    assert result.text == words.PROCESSING
    rt.executor.shutdown(wait=True)  # let the slow handler finish
    db = rt.db()
    assert messages.get(db, "msg:9001")["final_reply"] == "慢慢的完整答复"
    assert deliveries.get(db, "reply:msg:9001")["status"] == "pending"
    dispatch_all(rt)
    inbox = fake_api.inbox("oMember001")
    assert [m["content"] for m in inbox] == ["慢慢的完整答复"]


def test_a_handler_that_raises_still_gets_a_polite_reply(rt, wechat, caplog):
    def broken(msg, ctx):
        if msg.text == "炸":
            raise RuntimeError("boom")
        return None

    handle_first(rt, broken, "test.broken")
    result = wechat.text("oMember001", "炸")
    assert result.status == 200 and "抱歉" in result.text
    assert "boom" in caplog.text and "Traceback" in caplog.text


# --- long replies -----------------------------------------------------------------------------

def test_long_reply_is_split_and_more_continues(rt, wechat):
    long = "。".join(f"第{i}句话讲的是一件很长的事情" for i in range(200)) + "。"

    def chatty(msg, ctx):
        return Reply(long) if msg.text == "长" else None

    handle_first(rt, chatty, "test.long")
    first = wechat.text("oMember001", "长")
    assert len(first.text.encode()) <= 2048 and "回复 更多" in first.text
    pages = [first.text]
    for _ in range(20):
        nxt = wechat.text("oMember001", "更多").text
        pages.append(nxt)
        assert len(nxt.encode()) <= 2048
        if "回复 更多" not in nxt:
            break
    joined = "".join(p.replace(words.MORE_HINT, "").replace("\n", "") for p in pages)
    assert joined == long
    assert wechat.text("oMember001", "更多").text == words.MORE_NONE


# --- safe mode ----------------------------------------------------------------------------------

WECHAT_SAMPLE_ENCRYPT = (
    "hyzAe4OzmOMbd6TvGdIOO6uBmdJoD0Fk53REIHvxYtJlE2B655HuD0m8KUePWB3+LrPXo87wzQ1QLvbeUgmBM4x6F8PGH"
    "QHFVAFmOD2LdJF9FrXpbUAh0B5GIItb52sn896wVsMSHGuPE328HnRGBcrS7C41IzDWyWNlZkyyXwon8T332jisa+h6tE"
    "DYsVticbSnyU8dKOIbgU6ux5VTjg3yt+WGzjlpKn6NPhRjpA912xMezR4kw6KWwMrCVKSVCZciVGCgavjIQ6X8tCOp3yZ"
    "bGpy0VxpAe+77TszTfRd5RJSVO/HTnifJpXgCSUdUue1v6h0EIBYYI1BD1DlD+C0CR8e6OewpusjZ4uBl9FyJvnhvQl+q"
    "5rv1ixrcpCumEPo5MJSgM9ehVsNPfUM669WuMyVWQLCzpu9GhglF2PE=")


@pytest.fixture
def sample_app(make_app):
    # WeChat's sample was signed in 2014: only a tolerance reaching back that far accepts it
    return make_app(wechat_token="spamtest", wechat_aes_key=AES_KEY,
                    wechat_appid="wx2c2769f8efd9abc2",
                    wechat_timestamp_tolerance=int(time.time()) - 1409735669 + 3600)


def test_wechat_documented_safe_mode_sample_decrypts_and_is_answered(sample_app):
    rt = sample_app.extensions["chengcheng"]
    timestamp, nonce = "1409735669", "1320562132"
    assert crypto.signature("spamtest", timestamp, nonce, WECHAT_SAMPLE_ENCRYPT) == \
        "5d197aaffba7e9b25a30732f161a50dee96bd5fa"
    body = ("<xml><ToUserName><![CDATA[gh_10f6c3c3ac5a]]></ToUserName>"
            f"<Encrypt><![CDATA[{WECHAT_SAMPLE_ENCRYPT}]]></Encrypt></xml>")
    query = {"signature": crypto.signature("spamtest", timestamp, nonce),
             "timestamp": timestamp, "nonce": nonce, "encrypt_type": "aes",
             "msg_signature": "5d197aaffba7e9b25a30732f161a50dee96bd5fa"}
    resp = sample_app.test_client().post("/wechat", query_string=query, data=body)
    assert resp.status_code == 200
    row = rt.db().execute("SELECT openid, type, content FROM messages").fetchone()
    assert row == ("oyORnuP8q7ou2gfYjqLzSIWZf0rs", "text", "abcdteT")
    # the reply is an encrypted envelope that decrypts to a text reply for that member
    safe = crypto.SafeMode("spamtest", AES_KEY, "wx2c2769f8efd9abc2")
    import xmltodict

    envelope = xmltodict.parse(resp.get_data(as_text=True))["xml"]
    assert crypto.verify(envelope["MsgSignature"], "spamtest", envelope["TimeStamp"],
                         envelope["Nonce"], envelope["Encrypt"])
    inner = xmltodict.parse(safe.decrypt(envelope["Encrypt"]))["xml"]
    assert inner["ToUserName"] == "oyORnuP8q7ou2gfYjqLzSIWZf0rs" and inner["Content"]


def test_safe_mode_round_trip(wechat_aes):
    result = wechat_aes.text("oMember001", "帮助")
    assert result.status == 200 and "诚城青年助手" in result.text


def test_safe_mode_with_forged_msg_signature_is_403(app, wechat_aes, db):
    safe = crypto.SafeMode(TOKEN, AES_KEY, APPID)
    import xmltodict

    encrypted = xmltodict.parse(safe.encrypt(text_xml("oX123456", "hi"), "1", "1"))["xml"]["Encrypt"]
    query = {**wechat_aes.signed_query(encrypted=encrypted), "msg_signature": "a" * 40}
    resp = app.test_client().post("/wechat", query_string=query,
                                  data=f"<xml><Encrypt>{encrypted}</Encrypt></xml>")
    assert resp.status_code == 403 and count(db, "messages") == 0


def test_safe_mode_for_another_appid_is_400(app, wechat_aes, db):
    other = crypto.SafeMode(TOKEN, AES_KEY, "wxsomeoneelse")
    import xmltodict

    encrypted = xmltodict.parse(other.encrypt(text_xml("oX123456", "hi"), "1", "1"))["xml"]["Encrypt"]
    query = wechat_aes.signed_query(encrypted=encrypted)
    resp = app.test_client().post("/wechat", query_string=query,
                                  data=f"<xml><Encrypt>{encrypted}</Encrypt></xml>")
    assert resp.status_code == 400 and count(db, "messages") == 0


# --- a real server on a loopback port ----------------------------------------------------------

@pytest.fixture
def live_server(app):
    """Waitress in a thread of this process, stopped loop-first (no poll on a closed socket)."""
    from bench.signup_load import ThreadedServer

    with ThreadedServer(app) as server:
        yield server


def test_real_server_on_loopback(live_server):
    client = WeChatClient(TOKEN, url=live_server.url)
    assert client.text("oMember001", "帮助").text.startswith("我是诚城青年助手")
    aes = WeChatClient(TOKEN, url=live_server.url, aes_key=AES_KEY, appid=APPID)
    assert "诚城青年助手" in aes.text("oMember002", "你好").text
    assert requests.get(live_server.url + "/healthz", timeout=5).json() == {"status": "ok"}
    bad = requests.post(live_server.url + "/wechat", params=client.signed_query(),
                        data=b"<xml", timeout=5)
    assert bad.status_code == 400


# --- replayed and stale signatures (issue 10, item 2) ------------------------------------------

def signed(timestamp: str, nonce: str = "12345") -> dict:
    return {"signature": crypto.signature(TOKEN, timestamp, nonce), "timestamp": timestamp,
            "nonce": nonce}


@pytest.mark.parametrize("timestamp", [
    -330, +330, "946684800", "abc", "1e9", "-5", "１７００００００００",
])
def test_timestamps_outside_the_tolerance_are_403_for_get_and_post(app, db, timestamp):
    if isinstance(timestamp, int):  # seconds from now
        timestamp = str(int(time.time()) + timestamp)
    client = app.test_client()
    get = client.get("/wechat", query_string={**signed(timestamp), "echostr": "e"})
    post = client.post("/wechat", query_string=signed(timestamp),
                       data=text_xml("oMember001", "帮助").encode(), content_type="text/xml")
    assert (get.status_code, post.status_code) == (403, 403)
    assert count(db, "messages") == 0


def test_url_verification_works_within_the_tolerance(app):
    near = str(int(time.time()) - 290)
    resp = app.test_client().get("/wechat", query_string={**signed(near), "echostr": "ok42"})
    assert resp.status_code == 200 and resp.get_data(as_text=True) == "ok42"


def test_tolerance_is_measured_on_the_real_clock_not_bot_fake_now(app, rt):
    assert abs(rt.clock.now().timestamp() - time.time()) > 3600  # the fixture's BOT_FAKE_NOW
    fake = str(int(rt.clock.now().timestamp()))
    assert app.test_client().get("/wechat", query_string={**signed(fake), "echostr": "e"}) \
        .status_code == 403
    real = str(int(time.time()))
    assert app.test_client().get("/wechat", query_string={**signed(real), "echostr": "e"}) \
        .status_code == 200


def test_tolerance_is_a_setting(make_app):
    app = make_app(wechat_timestamp_tolerance=30)
    old = str(int(time.time()) - 60)
    assert app.test_client().get("/wechat", query_string={**signed(old), "echostr": "e"}) \
        .status_code == 403


def test_a_signed_url_replayed_with_another_body_is_403_but_wechats_retry_works(app, db):
    query = signed(str(int(time.time())), "777001")
    client = app.test_client()
    genuine = text_xml("oMember001", "帮助", msg_id=55501).encode()
    first = client.post("/wechat", query_string=query, data=genuine, content_type="text/xml")
    assert first.status_code == 200
    forged = text_xml("oOrganiser1", "通知 全体成员 明天停课", msg_id=55502).encode()
    replay = client.post("/wechat", query_string=query, data=forged, content_type="text/xml")
    assert replay.status_code == 403
    assert messages.get(db, "msg:55502") is None and count(db, "messages") == 1
    retry = client.post("/wechat", query_string=query, data=genuine, content_type="text/xml")
    assert retry.status_code == 200 and retry.data == first.data


def test_with_an_aes_key_plaintext_posts_are_403_unless_compat_mode(make_app):
    strict = make_app(wechat_compat_mode=False)
    db = strict.extensions["chengcheng"].db()
    plain = WeChatClient(TOKEN, app=strict).text("oMember001", "帮助")
    assert plain.status == 403 and count(db, "messages") == 0
    aes = WeChatClient(TOKEN, app=strict, aes_key=AES_KEY, appid=APPID)
    assert "诚城青年助手" in aes.text("oMember001", "帮助").text
    # encrypt_type=aes but no msg_signature: still 403
    query = {k: v for k, v in aes.signed_query(encrypted="x").items() if k != "msg_signature"}
    resp = strict.test_client().post("/wechat", query_string=query,
                                     data=b"<xml><Encrypt>x</Encrypt></xml>")
    assert resp.status_code == 403
    compat = make_app(wechat_compat_mode=True)
    assert WeChatClient(TOKEN, app=compat).text("oMember001", "帮助").status == 200


def test_compat_mode_is_read_from_the_environment():
    from settings import Settings

    assert Settings.from_env({}).wechat_compat_mode is False
    assert Settings.from_env({"WECHAT_COMPAT_MODE": "1"}).wechat_compat_mode is True
    assert Settings.from_env({"WECHAT_TIMESTAMP_TOLERANCE": "60"}).wechat_timestamp_tolerance == 60


# --- replies and failures (issue 10, items 1 and 11) ----------------------------------------------

def test_cdata_terminator_in_echoed_text_keeps_the_reply_xml_valid(rt, wechat):
    def echo(msg, ctx):
        return Reply(f"你说的是：{msg.text[3:]}") if msg.text.startswith("复读 ") else None

    handle_first(rt, echo, "test.echo")
    result = wechat.text("oMember001", "复读 a]]><b>&c")
    assert result.status == 200
    assert result.text == "你说的是：a]]><b>&c"


def _readonly(db, on: bool) -> None:
    db.execute(f"PRAGMA query_only = {int(on)}")


def test_healthz_checks_that_it_can_write(app, db):
    client = app.test_client()
    assert client.get("/healthz").get_json() == {"status": "ok"}
    _readonly(db, True)  # the same connection the request uses (test client: this thread)
    try:
        resp = client.get("/healthz")
    finally:
        _readonly(db, False)
    assert resp.status_code == 503 and resp.get_json()["status"] == "error"
    assert client.get("/healthz").status_code == 200


def test_healthz_is_503_while_the_database_is_locked(app, settings):
    from storage import connect

    other = connect(settings.db_path)
    other.conn.execute("BEGIN IMMEDIATE")
    try:
        t0 = time.monotonic()
        resp = app.test_client().get("/healthz")
        assert resp.status_code == 503 and time.monotonic() - t0 < 5
    finally:
        other.conn.execute("ROLLBACK")
        other.close()


def test_unwritable_database_is_503_and_nothing_is_recorded(app, db, wechat):
    _readonly(db, True)
    try:
        result = wechat.text("oMember001", "帮助", msg_id=66601)
    finally:
        _readonly(db, False)
    assert result.status == 503 and "Traceback" not in result.body
    assert count(db, "messages") == 0
    again = wechat.text("oMember001", "帮助", msg_id=66601)  # WeChat's retry
    assert again.status == 200 and "诚城青年助手" in again.text


def test_write_failing_after_a_sign_up_is_503_and_the_retry_tells_the_truth(app, rt, db, wechat,
                                                                            monkeypatch):
    from activities import service
    from bench.signup_load import prepare

    activity_id, [openid] = prepare(db, rt.clock.now(), rt.settings.tz, 1, 5)
    dispatch = rt.router.dispatch

    def then_disk_fails(msg, ctx):
        reply = dispatch(msg, ctx)  # the sign-up is saved (its own connection, committed)
        _readonly(db, True)  # ...and the request's next write, recording the reply, fails
        return reply

    monkeypatch.setattr(rt.router, "dispatch", then_disk_fails)
    try:
        first = wechat.text(openid, "报名 进博会青年突击队集训", msg_id=66602)
    finally:
        _readonly(db, False)
        monkeypatch.setattr(rt.router, "dispatch", dispatch)
    assert first.status == 503
    assert [r["status"] for r in service.signup_list(db, activity_id)] == ["confirmed"]
    t0 = time.monotonic()
    retry = wechat.text(openid, "报名 进博会青年突击队集训", msg_id=66602)
    assert time.monotonic() - t0 < 1
    assert retry.status == 200 and "已确认" in retry.text
    row = messages.get(db, "msg:66602")
    assert row["status"] == "done" and row["reply"] == retry.text
    assert len(service.signup_list(db, activity_id)) == 1


def _dead_process_holder() -> str:
    """A holder as a process that has since exited would have written it."""
    import subprocess
    import sys

    from storage import claims

    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])
    started = claims._start_time(child.pid)
    child.kill()
    child.wait()
    host, ns, boot = claims.this_process().split(":")[:3]
    return f"{host}:{ns}:{boot}:{child.pid}:{started}:deadbeef"


def test_retry_of_a_message_whose_process_died_runs_it_again(wechat, db, rt):
    holder = _dead_process_holder()
    db.execute("INSERT INTO messages(dedupe_key, msg_id, openid, type, content, status, "
               "created_at, claimed_by, claimed_at) VALUES ('msg:66603', '66603', 'oMember001', "
               "'text', '帮助', 'processing', '2026-11-21T02:00:00Z', ?, ?)",
               [holder, time.time()])
    t0 = time.monotonic()
    retry = wechat.text("oMember001", "帮助", msg_id=66603)
    assert time.monotonic() - t0 < 1
    assert retry.status == 200 and "诚城青年助手" in retry.text
    assert messages.get(db, "msg:66603")["status"] == "done"


def test_a_live_first_run_is_never_taken_over(app, rt, db):
    """A retry while the first run lives waits for it, even past the budget's margin."""
    from storage import claims

    holder = claims.begin()
    try:
        db.execute("INSERT INTO messages(dedupe_key, msg_id, openid, type, content, status, "
                   "created_at, claimed_by, claimed_at) VALUES ('msg:66604', '66604', "
                   "'oMember001', 'text', '帮助', 'deferred', '2026-11-21T02:00:00Z', ?, ?)",
                   [holder, time.time() - 60])
        db.execute("UPDATE messages SET reply = ? WHERE dedupe_key = 'msg:66604'",
                   [words.PROCESSING])
        retry = WeChatClient(TOKEN, app=app).text("oMember001", "帮助", msg_id=66604)
        assert retry.text == words.PROCESSING  # the live run pushes its answer
    finally:
        claims.end(holder)
    retry = WeChatClient(TOKEN, app=app).text("oMember001", "帮助", msg_id=66604)
    assert "诚城青年助手" in retry.text  # its run ended without queuing an answer: run again


def test_rows_left_by_a_dead_process_are_settled_at_start(rt, db):
    from handlers import pipeline

    holder = _dead_process_holder()
    for n, status in enumerate(["processing", "deferred"]):
        db.execute("INSERT INTO messages(dedupe_key, openid, type, status, created_at, "
                   "claimed_by, claimed_at) VALUES (?, 'oMember001', 'text', ?, "
                   "'2026-11-21T02:00:00Z', ?, ?)", [f"msg:7770{n}", status, holder, time.time()])
    assert pipeline.settle_dead(rt) == 2
    assert messages.unfinished(db) == []
    assert {messages.get(db, k)["status"] for k in ("msg:77700", "msg:77701")} == {"failed"}


# --- connections and body limits of `bot.py serve` (issue 10, item 4) ---------------------------

@pytest.fixture
def served(tmp_path):
    """A real `python bot.py serve` process on loopback."""
    from bench.signup_load import start_servers, stop_servers

    (tmp_path / "served").mkdir()
    servers = start_servers(1, tmp_path / "served", TOKEN)
    yield servers[0][1]
    stop_servers(servers)


def _raw(url: str, head: str, body: bytes = b"", timeout: float = 3) -> bytes:
    import socket

    host, port = url.rsplit("/", 1)[-1].split(":")
    with socket.create_connection((host, int(port)), timeout=timeout) as sock:
        sock.sendall(head.encode() + body)
        return sock.recv(200)


def test_200_idle_connections_do_not_stop_the_webhook(served):
    import socket

    host, port = served.rsplit("/", 1)[-1].split(":")
    idle = [socket.create_connection((host, int(port)), timeout=5) for _ in range(200)]
    try:
        time.sleep(0.3)  # the server has accepted (or refused to accept) them all
        client = WeChatClient(TOKEN, url=served, timeout=3)
        t0 = time.monotonic()
        result = client.text("oMember001", "帮助")
        assert result.status == 200 and "诚城青年助手" in result.text
        assert time.monotonic() - t0 < 1
    finally:
        for sock in idle:
            sock.close()


def test_huge_bodies_are_refused_from_the_headers_and_uploads_keep_their_limit(served):
    query = "/wechat?signature=x&timestamp=1&nonce=1"
    huge = _raw(served, f"POST {query} HTTP/1.1\r\nHost: x\r\nContent-Length: 400000000\r\n\r\n")
    assert huge.startswith(b"HTTP/1.1 413")  # answered before a byte of the body was sent
    chunk = b"10000\r\n" + b"a" * 0x10000 + b"\r\n"
    chunked = _raw(served, f"POST {query} HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked"
                           "\r\n\r\n", chunk * 4)
    assert chunked.startswith(b"HTTP/1.1 413")
    upload = _raw(served, "POST /admin/knowledge/upload HTTP/1.1\r\nHost: x\r\n"
                          "Content-Length: 1000000\r\nConnection: close\r\n\r\n", b"a" * 1000000)
    assert upload.startswith(b"HTTP/1.1 ") and not upload.startswith(b"HTTP/1.1 413")


# --- the fast path: no thread hand-off while answers are fast (issue 11) ----------------------

def _record_threads(rt, seen: list):
    def where(msg, ctx):
        if msg.text != "线程":
            return None
        seen.append(threading.current_thread())
        return Reply("ok")

    handle_first(rt, where, "test.where")


def test_fast_answers_run_in_the_request_thread_once_handlers_prove_fast(rt, wechat):
    from handlers import pipeline

    seen: list = []
    _record_threads(rt, seen)
    assert wechat.text("oMember001", "线程").text == "ok"
    assert seen[-1] is not threading.current_thread()  # a new app hands off to a worker
    for _ in range(pipeline.INLINE_AFTER):
        wechat.text("oMember001", "帮助")
    assert wechat.text("oMember001", "线程").text == "ok"
    assert seen[-1] is threading.current_thread()  # the test client's request thread


def test_fast_path_waiting_past_the_budget_for_the_database_is_503_then_retried(make_app):
    from handlers import pipeline
    from storage import immediate

    app = make_app(reply_budget=0.5)
    rt = app.extensions["chengcheng"]
    pipeline._pace(rt).streak = pipeline.INLINE_AFTER
    db = rt.db()
    take, held, release = threading.Event(), threading.Event(), threading.Event()

    def writer_elsewhere():  # another thread of this process holds the write lock for long
        take.wait(5)
        with db.write_lock:
            held.set()
            release.wait(5)

    def writes(msg, ctx):
        if msg.text != "写":
            return None
        if not release.is_set():
            take.set()
            held.wait(5)
        with immediate(ctx.db):
            ctx.db.execute("UPDATE members SET name = name WHERE openid = ?", [msg.openid])
        return Reply("写好了")

    handle_first(rt, writes, "test.writes")
    other = threading.Thread(target=writer_elsewhere)
    other.start()
    client = WeChatClient(TOKEN, app=app)
    try:
        t0 = time.monotonic()
        first = client.text("oMember001", "写", msg_id=66701)
        assert first.status == 503 and time.monotonic() - t0 < 1.5
    finally:
        release.set()
        other.join()
    retry = client.text("oMember001", "写", msg_id=66701)
    assert retry.status == 200 and retry.text == "写好了"
    assert messages.get(db, "msg:66701")["status"] == "done"


def test_a_retry_that_says_processing_makes_a_slow_fast_path_run_push(make_app, fake_api):
    from handlers import pipeline

    app = make_app(reply_budget=0.3)
    rt = app.extensions["chengcheng"]
    pipeline._pace(rt).streak = pipeline.INLINE_AFTER

    def slow(msg, ctx):
        if msg.text != "慢":
            return None
        time.sleep(0.8)
        return Reply("慢慢的完整答复")

    handle_first(rt, slow, "test.slow")
    xml = text_xml("oMember001", "慢", msg_id=66702)
    first = []
    run = threading.Thread(target=lambda: first.append(WeChatClient(TOKEN, app=app).post_xml(xml)))
    run.start()
    time.sleep(0.1)
    retry = WeChatClient(TOKEN, app=app).post_xml(xml)  # WeChat gave up on the first
    assert retry.text == words.PROCESSING
    run.join()
    db = rt.db()
    assert messages.get(db, "msg:66702")["final_reply"] == "慢慢的完整答复"
    dispatch_all(rt)
    assert [m["content"] for m in fake_api.inbox("oMember001")] == ["慢慢的完整答复"]


def test_a_dead_processs_promised_answer_is_pushed_after_the_restart(make_app, fake_api):
    """The member was told "正在处理" and the process died before answering: the next start
    answers it by push, as promised."""
    app = make_app()
    db = app.extensions["chengcheng"].db()
    db.execute("INSERT INTO messages(dedupe_key, msg_id, openid, type, content, reply, status, "
               "created_at, claimed_by, claimed_at) VALUES ('msg:66801', '66801', 'oMember001', "
               "'text', '帮助', ?, 'deferred', '2026-11-21T02:00:00Z', ?, ?)",
               [words.PROCESSING, _dead_process_holder(), time.time()])
    restarted = make_app()  # create_app settles what dead processes left
    rt = restarted.extensions["chengcheng"]
    rt.executor.shutdown(wait=True)
    row = messages.get(db, "msg:66801")
    assert "诚城青年助手" in row["final_reply"]
    assert deliveries.get(db, "reply:msg:66801")["text"] == row["final_reply"]
    dispatch_all(rt)
    assert [m["content"] for m in fake_api.inbox("oMember001")] == [row["final_reply"]]


# --- the read-only fast path (issue 11) --------------------------------------------------------

def _fast(rt):
    from handlers import pipeline

    pipeline._pace(rt).streak = pipeline.INLINE_AFTER
    return pipeline


def _writes_of(db, action):
    """The statements that write, run on this thread's connection during `action()`."""
    seen: list[str] = []
    db.conn.set_trace_callback(seen.append)
    try:
        action()
    finally:
        db.conn.set_trace_callback(None)
    return [s.split("(")[0].strip() for s in seen
            if s.lstrip().upper().startswith(("INSERT", "UPDATE", "DELETE", "BEGIN", "COMMIT"))]


def test_a_read_only_answer_is_recorded_with_the_members_visit_in_one_transaction(rt, wechat, db):
    _fast(rt)
    wechat.text("oMember001", "帮助", msg_id=67001)  # the member exists
    later = rt.clock.now() + timedelta(hours=1)
    rt.clock.set(later)
    result = None

    def ask():
        nonlocal result
        result = wechat.text("oMember001", "谢谢", msg_id=67002)

    writes = _writes_of(rt.db(), ask)
    assert result.text == "不客气！还有问题随时问我。"
    assert writes == ["BEGIN IMMEDIATE", "INSERT INTO messages", "INSERT INTO members", "COMMIT"]
    row = messages.get(db, "msg:67002")
    assert row["status"] == "done" and row["reply"] == result.text
    assert row["handler"] == "chitchat.reply" and row["finished_at"]
    last_seen = members.get(db, "oMember001")["last_seen"]
    assert to_db(later) <= last_seen <= to_db(later + timedelta(minutes=1))  # the visit is kept


def test_a_retry_during_a_read_only_run_gets_its_reply_and_the_handler_runs_once(app, rt, db):
    _fast(rt)
    members.ensure(db, "oMember001", rt.clock.now())
    calls = []

    def slow_reader(msg, ctx):
        if msg.text != "慢读":
            return None
        calls.append(msg.msg_id)
        time.sleep(0.3)
        return Reply(f"第{len(calls)}次")

    handle_first(rt, slow_reader, "test.slow_reader")
    xml = text_xml("oMember001", "慢读", msg_id=67101)
    results = []
    first = threading.Thread(target=lambda: results.append(WeChatClient(TOKEN, app=app).post_xml(xml)))
    first.start()
    time.sleep(0.1)
    retry = WeChatClient(TOKEN, app=app).post_xml(xml)
    first.join()
    assert calls == ["67101"]
    assert retry.text == results[0].text == "第1次"
    assert count(db, "messages") == 1 and messages.get(db, "msg:67101")["status"] == "done"


def test_handlers_that_write_run_once_after_a_claim_and_no_error_is_logged(rt, wechat, db, caplog):
    _fast(rt)
    wechat.text("oMember001", "帮助")
    tries = []

    def writer(msg, ctx):
        if msg.text != "记一笔":
            return None
        tries.append(ctx.db.conn.in_transaction)
        ctx.db.execute("INSERT INTO kv(key, value, updated_at) VALUES ('tally', "
                       "COALESCE((SELECT value FROM kv WHERE key = 'tally'), 0) + 1, 'now') "
                       "ON CONFLICT(key) DO UPDATE SET value = value + 1")
        return Reply("记好了")

    handle_first(rt, writer, "test.writer")
    result = wechat.text("oMember001", "记一笔", msg_id=67201)
    assert result.text == "记好了"
    assert len(tries) == 2  # read-only try refused at the write, then the claimed run
    assert db.execute("SELECT value FROM kv WHERE key = 'tally'").fetchone()[0] == "1"
    assert messages.get(db, "msg:67201")["status"] == "done"
    assert "failed" not in caplog.text and "Traceback" not in caplog.text


def test_a_read_only_run_cannot_write_through_a_connection_asked_for_again(rt, wechat, db):
    _fast(rt)
    wechat.text("oMember001", "帮助")
    tries = []

    def sneaky(msg, ctx):
        if msg.text != "另记一笔":
            return None
        tries.append(msg.msg_id)
        ctx.rt.db().execute("INSERT INTO kv(key, value, updated_at) VALUES ('sneaky', "
                            "'1', 'now') ON CONFLICT(key) DO UPDATE SET value = value + 1")
        return Reply("记好了")

    handle_first(rt, sneaky, "test.sneaky")
    assert wechat.text("oMember001", "另记一笔", msg_id=67251).text == "记好了"
    assert len(tries) == 2
    assert db.execute("SELECT value FROM kv WHERE key = 'sneaky'").fetchone()[0] == "1"


def test_a_replayed_url_is_refused_before_any_handler_runs(app, rt, wechat, db):
    _fast(rt)
    members.ensure(db, "oMember001", rt.clock.now())
    calls = []

    def counter(msg, ctx):
        calls.append(msg.text)
        return None

    handle_first(rt, counter, "test.counter")
    client = WeChatClient(TOKEN, app=app)
    query = client.signed_query()
    first = app.test_client().post("/wechat", query_string=query, content_type="text/xml",
                                   data=text_xml("oMember001", "谢谢", msg_id=67301).encode())
    replayed = app.test_client().post("/wechat", query_string=query, content_type="text/xml",
                                      data=text_xml("oMember001", "报名", msg_id=67302).encode())
    assert (first.status_code, replayed.status_code) == (200, 403)
    assert calls == ["谢谢"]
    assert messages.get(db, "msg:67302") is None


def test_waitress_queue_depth_warnings_are_thinned_to_one_per_ten_seconds(app, caplog):
    import logging

    import bot

    caplog.set_level(logging.WARNING, logger="waitress.queue")
    server = bot.make_server(app, host="127.0.0.1", port=0, threads=1)
    server.close()
    bot.QUEUE_LOG.last = float("-inf")
    for depth in range(1, 6):  # as waitress's task dispatcher warns
        server.task_dispatcher.queue_logger.warning("Task queue depth is %d", depth)
    assert caplog.text.count("Task queue depth") == 1
