"""Tests for the fake WeChat API server: real HTTP over loopback via requests."""

import sys
import time
from pathlib import Path

import pytest
import requests

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # import wechat/ without install

from wechat.fake_api import ERRMSG, FakeWeChatAPI  # noqa: E402

APPID, SECRET = "wxfakeappid", "fakesecret"
ALICE, BOB = "oAlice_123456", "oBob-654321"
TIMEOUT = 5


@pytest.fixture
def api():
    with FakeWeChatAPI(appid=APPID, secret=SECRET) as server:
        yield server


def get_token(api, appid=APPID, secret=SECRET):
    r = requests.get(f"{api.url}/cgi-bin/token", timeout=TIMEOUT,
                     params={"grant_type": "client_credential", "appid": appid, "secret": secret})
    assert r.status_code == 200
    return r.json()


def stable_token(api, force=False):
    r = requests.post(f"{api.url}/cgi-bin/stable_token", timeout=TIMEOUT,
                      json={"grant_type": "client_credential", "appid": APPID,
                            "secret": SECRET, "force_refresh": force})
    return r.json()


def post(api, path, token, body, timeout=TIMEOUT):
    return requests.post(f"{api.url}{path}", params={"access_token": token}, json=body,
                         timeout=timeout)


def send_text(api, token, touser, content="hi", timeout=TIMEOUT):
    return post(api, "/cgi-bin/message/custom/send", token,
                {"touser": touser, "msgtype": "text", "text": {"content": content}}, timeout)


def test_start_binds_loopback_and_stop_releases():
    server = FakeWeChatAPI().start()
    assert server.url.startswith("http://127.0.0.1:") and server.port > 0
    server.stop()
    with pytest.raises(requests.ConnectionError):
        requests.get(f"{server.url}/cgi-bin/token", timeout=1)


def test_token_fetch_and_credential_errors(api):
    body = get_token(api)
    assert body["expires_in"] == 7200 and len(body["access_token"]) > 32
    assert api.token_fetches == 1
    assert get_token(api, appid="wxwrong") == {"errcode": 40013, "errmsg": "invalid appid"}
    assert get_token(api, secret="nope") == {
        "errcode": 40001, "errmsg": "invalid credential, access_token is invalid or not latest"}
    assert api.token_fetches == 1
    assert len(api.calls_to("/cgi-bin/token")) == 3


def test_new_token_supersedes_old(api):
    old = get_token(api)["access_token"]
    new = get_token(api)["access_token"]
    assert old != new and api.token_fetches == 2
    assert send_text(api, old, ALICE).json()["errcode"] == 40001
    assert send_text(api, new, ALICE).json() == {"errcode": 0, "errmsg": "ok"}


def test_missing_or_unknown_token_is_40001(api):
    r = requests.post(f"{api.url}/cgi-bin/message/custom/send", timeout=TIMEOUT,
                      json={"touser": ALICE, "msgtype": "text", "text": {"content": "x"}})
    assert r.json()["errcode"] == 40001
    assert send_text(api, "bogus", ALICE).json()["errcode"] == 40001


def test_token_expires_by_server_clock():
    with FakeWeChatAPI(token_ttl=0.3) as short:
        token = get_token(short)["access_token"]
        assert send_text(short, token, ALICE).json()["errcode"] == 0
        time.sleep(0.4)
        assert send_text(short, token, ALICE).json() == {"errcode": 42001,
                                                          "errmsg": "access_token expired"}


def test_expire_tokens(api):
    token = get_token(api)["access_token"]
    api.expire_tokens()
    assert send_text(api, token, ALICE).json()["errcode"] == 42001
    fresh = get_token(api)["access_token"]
    assert send_text(api, fresh, ALICE).json()["errcode"] == 0


def test_stable_token_reused_until_force_refresh(api):
    first = stable_token(api)
    second = stable_token(api)
    assert first["access_token"] == second["access_token"]
    assert 0 < second["expires_in"] <= 7200
    assert api.token_fetches == 1
    forced = stable_token(api, force=True)
    assert forced["access_token"] != first["access_token"] and api.token_fetches == 2
    assert send_text(api, first["access_token"], ALICE).json()["errcode"] == 40001
    api.expire_tokens()
    renewed = stable_token(api)
    assert renewed["access_token"] != forced["access_token"] and api.token_fetches == 3
    assert len(api.calls_to("/cgi-bin/stable_token")) == 4


def test_stable_token_bad_secret(api):
    r = requests.post(f"{api.url}/cgi-bin/stable_token", timeout=TIMEOUT,
                      json={"grant_type": "client_credential", "appid": APPID, "secret": "x"})
    assert r.json()["errcode"] == 40001 and api.token_fetches == 0


def test_custom_send_lands_in_inbox_utf8(api):
    token = get_token(api)["access_token"]
    r = send_text(api, token, ALICE, "你好，世界")
    assert r.status_code == 200 and r.json() == {"errcode": 0, "errmsg": "ok"}
    assert "application/json" in r.headers["Content-Type"]
    send_text(api, token, BOB, "second")
    [msg] = api.inbox(ALICE)
    assert msg["content"] == "你好，世界" and msg["kind"] == "custom" and msg["openid"] == ALICE
    assert [m["content"] for m in api.inbox()] == ["你好，世界", "second"]
    call = api.calls_to("/cgi-bin/message/custom/send")[0]
    assert call["method"] == "POST" and call["status"] == 200
    assert call["query"]["access_token"] == token and call["json"]["touser"] == ALICE
    assert call["response"]["errcode"] == 0 and isinstance(call["time"], float)


def test_invalid_openid_and_unsubscribed(api):
    token = get_token(api)["access_token"]
    assert send_text(api, token, "bad openid!").json() == {"errcode": 40003,
                                                            "errmsg": "invalid openid"}
    assert send_text(api, token, "short").json()["errcode"] == 40003
    api.unsubscribed.add(BOB)
    assert send_text(api, token, BOB).json() == {"errcode": 43004,
                                                  "errmsg": "require subscribe hint"}
    assert api.inbox() == []


def test_injected_errcode_consumed_once(api):
    token = get_token(api)["access_token"]
    api.inject("/cgi-bin/message/custom/send", errcode=45009)
    assert send_text(api, token, ALICE).json() == {"errcode": 45009,
                                                    "errmsg": "reach max api daily quota limit"}
    assert send_text(api, token, ALICE).json()["errcode"] == 0
    assert len(api.inbox(ALICE)) == 1


def test_injected_faults_in_order_and_per_openid(api):
    token = get_token(api)["access_token"]
    api.inject("/cgi-bin/message/custom/send", errcode=45015, openid=BOB)
    api.inject("/cgi-bin/message/custom/send", errcode=-1, times=2)
    codes = [send_text(api, token, u).json()["errcode"] for u in (ALICE, BOB, ALICE, BOB)]
    assert codes == [-1, 45015, -1, 0]
    api.inject("/cgi-bin/message/custom/send", errcode=45047, times=5)
    api.clear_faults()
    assert send_text(api, token, ALICE).json()["errcode"] == 0


def test_injected_http_500(api):
    token = get_token(api)["access_token"]
    api.inject("/cgi-bin/message/custom/send", http_status=500)
    r = send_text(api, token, ALICE)
    assert r.status_code == 500 and "500" in r.text
    assert send_text(api, token, ALICE).status_code == 200
    assert api.calls_to("/cgi-bin/message/custom/send")[0]["status"] == 500


def test_injected_fault_on_token_endpoint(api):
    api.inject("/cgi-bin/token", http_status=502)
    r = requests.get(f"{api.url}/cgi-bin/token", timeout=TIMEOUT,
                     params={"grant_type": "client_credential", "appid": APPID, "secret": SECRET})
    assert r.status_code == 502 and api.token_fetches == 0
    assert "access_token" in get_token(api)


def test_injected_delay_triggers_client_timeout(api):
    token = get_token(api)["access_token"]
    api.inject("/cgi-bin/message/custom/send", delay=0.5)
    with pytest.raises(requests.exceptions.Timeout):
        send_text(api, token, ALICE, timeout=0.2)
    assert send_text(api, token, ALICE, timeout=0.2).json()["errcode"] == 0


def _random_outcomes(seed):
    with FakeWeChatAPI() as server:
        token = get_token(server)["access_token"]
        server.inject_random("/cgi-bin/message/custom/send", 0.3, seed=seed)
        session = requests.Session()
        outcomes = []
        for _ in range(200):
            r = session.post(f"{server.url}/cgi-bin/message/custom/send", timeout=TIMEOUT,
                             params={"access_token": token},
                             json={"touser": ALICE, "msgtype": "text", "text": {"content": "x"}})
            outcomes.append(r.status_code if r.status_code != 200 else r.json()["errcode"])
        assert len(server.inbox(ALICE)) == outcomes.count(0)
        return outcomes


def test_inject_random_is_deterministic_and_roughly_right():
    first = _random_outcomes(seed=7)
    assert first == _random_outcomes(seed=7)
    failures = [o for o in first if o != 0]
    assert 35 <= len(failures) <= 85
    assert set(failures) <= {-1, 45009, 500} and len(set(failures)) > 1


def test_template_send(api):
    token = get_token(api)["access_token"]
    r = post(api, "/cgi-bin/message/template/send", token, {"touser": ALICE, "data": {}})
    assert r.json() == {"errcode": 40037, "errmsg": "invalid template_id"}
    r = post(api, "/cgi-bin/message/template/send", token,
             {"touser": ALICE, "template_id": "tpl1", "url": "https://example.com",
              "data": {"first": {"value": "订单"}, "remark": {"value": "done"}}})
    body = r.json()
    assert body["errcode"] == 0 and body["errmsg"] == "ok" and isinstance(body["msgid"], int)
    [msg] = api.inbox(ALICE)
    assert msg["kind"] == "template" and msg["template_id"] == "tpl1"
    assert msg["data"]["first"]["value"] == "订单" and "remark: done" in msg["content"]
    assert msg["url"] == "https://example.com" and msg["msgid"] == body["msgid"]


def test_subscribe_bizsend(api):
    token = get_token(api)["access_token"]
    r = post(api, "/cgi-bin/message/subscribe/bizsend", token,
             {"touser": ALICE, "template_id": "sub1", "page": "pages/a", "data": {"k": {"value": "v"}}})
    assert r.json() == {"errcode": 0, "errmsg": "ok"}
    assert api.inbox(ALICE)[0]["kind"] == "subscribe"


def test_menu_create_and_get(api):
    token = get_token(api)["access_token"]
    r = requests.get(f"{api.url}/cgi-bin/menu/get", params={"access_token": token}, timeout=TIMEOUT)
    assert r.json()["errcode"] == 46003
    assert post(api, "/cgi-bin/menu/create", token, {"nope": 1}).json() == {
        "errcode": 40016, "errmsg": "invalid button size"}
    menu = {"button": [{"type": "click", "name": "帮助", "key": "HELP"}]}
    assert post(api, "/cgi-bin/menu/create", token, menu).json()["errcode"] == 0
    r = requests.get(f"{api.url}/cgi-bin/menu/get", params={"access_token": token}, timeout=TIMEOUT)
    assert r.json() == {"menu": menu}


def test_user_get_paging(api):
    api.subscribers = [f"oUser{i:06d}" for i in range(25000)]
    token = get_token(api)["access_token"]
    seen, next_openid, counts = [], "", []
    while True:
        r = requests.get(f"{api.url}/cgi-bin/user/get", timeout=TIMEOUT,
                         params={"access_token": token, "next_openid": next_openid}).json()
        assert r["total"] == 25000
        counts.append(r["count"])
        if r["count"] == 0:
            assert r["next_openid"] == ""
            break
        seen += r["data"]["openid"]
        next_openid = r["next_openid"]
    assert counts == [10000, 10000, 5000, 0]
    assert seen == api.subscribers


def test_user_info(api):
    token = get_token(api)["access_token"]
    api.unsubscribed.add(BOB)
    url = f"{api.url}/cgi-bin/user/info"
    alice = requests.get(url, params={"access_token": token, "openid": ALICE}, timeout=TIMEOUT)
    assert alice.json()["subscribe"] == 1 and alice.json()["openid"] == ALICE
    bob = requests.get(url, params={"access_token": token, "openid": BOB}, timeout=TIMEOUT)
    assert bob.json() == {"subscribe": 0, "openid": BOB}


def test_http_hooks_inject_inbox_calls_reset(api):
    token = get_token(api)["access_token"]
    r = requests.post(f"{api.url}/_fake/inject", timeout=TIMEOUT,
                      json={"path": "/cgi-bin/message/custom/send", "errcode": 45047, "times": 1})
    assert r.json() == {"ok": True}
    assert send_text(api, token, ALICE).json() == {"errcode": 45047,
                                                    "errmsg": "out of response count limit"}
    send_text(api, token, ALICE, "one")
    send_text(api, token, BOB, "for bob")
    send_text(api, token, ALICE, "two")
    inbox = requests.get(f"{api.url}/_fake/inbox", params={"openid": ALICE}, timeout=TIMEOUT).json()
    assert [m["content"] for m in inbox["messages"]] == ["one", "two"] and inbox["next"] == 3
    later = requests.get(f"{api.url}/_fake/inbox", params={"openid": ALICE, "since": 3},
                         timeout=TIMEOUT).json()
    assert later == {"messages": [], "next": 3}
    send_text(api, token, ALICE, "three")
    later = requests.get(f"{api.url}/_fake/inbox", params={"openid": ALICE, "since": 3},
                         timeout=TIMEOUT).json()
    assert [m["content"] for m in later["messages"]] == ["three"] and later["next"] == 4
    calls = requests.get(f"{api.url}/_fake/calls", params={"path": "/cgi-bin/message/custom/send"},
                         timeout=TIMEOUT).json()["calls"]
    assert len(calls) == 5 and calls[0]["response"]["errcode"] == 45047
    assert requests.post(f"{api.url}/_fake/subscribers", json={"openids": [ALICE, BOB]},
                         timeout=TIMEOUT).json() == {"ok": True}
    assert api.subscribers == [ALICE, BOB]
    requests.post(f"{api.url}/_fake/reset", timeout=TIMEOUT)
    assert api.calls == [] and api.inbox() == []
    assert send_text(api, token, ALICE).json()["errcode"] == 0  # tokens survive reset


def test_malformed_json_and_unknown_path(api):
    token = get_token(api)["access_token"]
    r = requests.post(f"{api.url}/cgi-bin/message/custom/send", params={"access_token": token},
                      data=b"{not json", headers={"Content-Type": "application/json"},
                      timeout=TIMEOUT)
    assert r.status_code == 200 and r.json() == {"errcode": 47001, "errmsg": "data format error"}
    r = requests.get(f"{api.url}/cgi-bin/nope", timeout=TIMEOUT)
    assert r.status_code == 404 and r.json()["errcode"] == -1


def test_errmsg_table_has_real_texts():
    assert ERRMSG[-1] == "system error"
    assert ERRMSG[45015] == "response out of time limit or subscription is canceled"
    assert ERRMSG[47001] == "data format error"


# --- template field limits (47003) and client_msg_id ------------------------------------------

def send_template(api, token, data, **extra):
    return post(api, "/cgi-bin/message/template/send", token,
                {"touser": ALICE, "template_id": "tmpl", "data": data, **extra}).json()


@pytest.mark.parametrize("key,value", [
    ("thing1", "一" * 21), ("keyword2", "x" * 21), ("character_string3", "A" * 33),
    ("character_string3", "订单A123"), ("phrase4", "报名已经成功"), ("phrase4", "OK"),
])
def test_template_fields_over_their_limits_get_47003(api, key, value):
    token = get_token(api)["access_token"]
    body = send_template(api, token, {key: {"value": value}})
    assert body["errcode"] == 47003 and key in body["errmsg"]
    assert api.inbox() == []


def test_template_fields_at_their_limits_are_delivered(api):
    token = get_token(api)["access_token"]
    body = send_template(api, token, {"thing1": {"value": "一" * 20},
                                      "character_string2": {"value": "A-123_x" * 4},
                                      "phrase3": {"value": "报名成功"},
                                      "remark": {"value": "不限" * 100}})
    assert body["errcode"] == 0 and len(api.inbox()) == 1


def test_client_msg_id_sends_one_message_per_openid(api):
    token = get_token(api)["access_token"]
    data = {"keyword1": {"value": "活动提醒"}}
    first = send_template(api, token, data, client_msg_id="17")
    again = send_template(api, token, data, client_msg_id="17")
    other = send_template(api, token, data, client_msg_id="18")
    assert first["errcode"] == again["errcode"] == 0 and first["msgid"] == again["msgid"]
    assert other["msgid"] != first["msgid"]
    assert [m["msgid"] for m in api.inbox()] == [first["msgid"], other["msgid"]]


# --- parametric QR codes ----------------------------------------------------------------------

def create_qr(api, token, body):
    return post(api, "/cgi-bin/qrcode/create", token, body).json()


def test_qrcode_create_and_showqrcode(api):
    token = get_token(api)["access_token"]
    body = create_qr(api, token, {"expire_seconds": 3600, "action_name": "QR_STR_SCENE",
                                  "action_info": {"scene": {"scene_str": "checkin:123456"}}})
    assert body["expire_seconds"] == 3600 and body["url"].startswith("http://weixin.qq.com/q/")
    [qr] = api.qr_codes
    assert (qr["ticket"], qr["scene"]) == (body["ticket"], "checkin:123456")
    image = requests.get(f"{api.url}/cgi-bin/showqrcode", params={"ticket": body["ticket"]},
                         timeout=TIMEOUT)
    assert image.status_code == 200 and image.headers["Content-Type"] == "image/png"
    assert image.content.startswith(b"\x89PNG")
    missing = requests.get(f"{api.url}/cgi-bin/showqrcode", params={"ticket": "nope"},
                           timeout=TIMEOUT)
    assert missing.status_code == 404


@pytest.mark.parametrize("body,expected", [
    ({"action_name": "QR_STR_SCENE", "action_info": {"scene": {"scene_str": "x" * 65}}}, 40097),
    ({"action_name": "QR_STR_SCENE", "action_info": {"scene": {}}}, 40097),
    ({"action_name": "QR_BOGUS", "action_info": {"scene": {"scene_str": "a"}}}, 40097),
    ({"action_name": "QR_SCENE", "action_info": {"scene": {"scene_id": 0}}}, 40097),
])
def test_qrcode_create_refuses_bad_arguments(api, body, expected):
    token = get_token(api)["access_token"]
    assert create_qr(api, token, body)["errcode"] == expected


def test_qrcode_expiry_defaults_and_caps_and_unverified_accounts(api):
    token = get_token(api)["access_token"]
    scene = {"action_name": "QR_STR_SCENE", "action_info": {"scene": {"scene_str": "a"}}}
    assert create_qr(api, token, scene)["expire_seconds"] == 60
    assert create_qr(api, token, {**scene, "expire_seconds": 10**9})["expire_seconds"] == 2592000
    assert create_qr(api, "bad-token", scene)["errcode"] == 40001
    api.qr_unauthorized = True
    assert create_qr(api, token, scene)["errcode"] == 48001
