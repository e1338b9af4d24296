"""The access token: cached in the database, shared by every client, refreshed under a lease."""
from __future__ import annotations

import threading
from dataclasses import replace

import pytest
import requests

from clock import Clock
from storage import kv, migrate, open_db
from wechat.api import TOKEN_KEY, WeChatAPI, WeChatAPIError
from tests.conftest import APPID, SECRET

CUSTOM = "/cgi-bin/message/custom/send"
STABLE = "/cgi-bin/stable_token"


@pytest.fixture
def client(settings):
    """A factory of WeChatAPI clients on one database, each like a separate process:
    every thread gets its own connection."""
    migrate(open_db(settings.db_path))
    clock = Clock(settings.fixed_now())

    def make(**overrides):
        s = replace(settings, **overrides) if overrides else settings
        return WeChatAPI(s, lambda: open_db(s.db_path), clock.now)
    return make


@pytest.mark.parametrize("stable", [True, False])
def test_one_fetch_shared_by_two_clients_even_when_they_ask_at_once(client, fake_api, stable):
    first, second = client(wechat_stable_token=stable), client(wechat_stable_token=stable)
    barrier = threading.Barrier(8)
    tokens = []

    def ask(api):
        barrier.wait()
        tokens.append(api.access_token())

    threads = [threading.Thread(target=ask, args=(api,)) for api in [first, second] * 4]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(set(tokens)) == 1 and len(tokens) == 8
    assert fake_api.token_fetches == 1
    assert first.token_fetches + second.token_fetches == 1


def test_the_token_is_kept_in_the_database_across_restarts(client, fake_api, settings):
    token = client().access_token()
    assert token in kv.get(open_db(settings.db_path), TOKEN_KEY)
    again = client()  # a new process
    again.send_custom_text("oMember00001", "你好")
    assert fake_api.token_fetches == 1 and again.token_fetches == 0


def test_stable_token_is_the_default(client, fake_api):
    client().access_token()
    [call] = fake_api.calls
    assert call["path"] == STABLE and call["json"]["force_refresh"] is False


def test_40001_after_another_process_fetched_refreshes_without_forcing(client, fake_api):
    api = client()
    api.send_custom_text("oMember00001", "一")
    # someone else's /cgi-bin/token fetch supersedes our token (WeChat: the old one is invalid)
    requests.get(fake_api.url + "/cgi-bin/token",
                 params={"grant_type": "client_credential", "appid": APPID, "secret": SECRET})
    api.send_custom_text("oMember00001", "二")
    sends = fake_api.calls_to(CUSTOM)
    assert [c["response"]["errcode"] for c in sends] == [0, 40001, 0]
    assert [c["json"]["force_refresh"] for c in fake_api.calls_to(STABLE)] == [False, False]
    assert [m["content"] for m in fake_api.inbox()] == ["一", "二"]


def test_40001_on_the_current_token_forces_a_refresh(client, fake_api):
    api = client()
    old = api.access_token()
    fake_api.inject(CUSTOM, errcode=40001)
    api.send_custom_text("oMember00001", "你好")
    stable = fake_api.calls_to(STABLE)
    assert [c["json"]["force_refresh"] for c in stable] == [False, False, True]
    sends = fake_api.calls_to(CUSTOM)
    assert sends[0]["query"]["access_token"] == old
    assert sends[1]["query"]["access_token"] != old
    assert len(fake_api.inbox()) == 1


def test_42001_expired_token_is_refreshed_and_the_call_repeated(client, fake_api):
    api = client()
    api.send_custom_text("oMember00001", "一")
    fake_api.expire_tokens()
    api.send_custom_text("oMember00001", "二")
    assert [c["response"]["errcode"] for c in fake_api.calls_to(CUSTOM)] == [0, 42001, 0]
    assert fake_api.token_fetches == 2
    assert len(fake_api.inbox()) == 2


def test_classic_token_endpoint_when_stable_is_off(client, fake_api):
    api = client(wechat_stable_token=False)
    api.send_custom_text("oMember00001", "一")
    fake_api.inject(CUSTOM, errcode=40001)
    api.send_custom_text("oMember00001", "二")
    assert len(fake_api.calls_to("/cgi-bin/token")) == 2 and fake_api.calls_to(STABLE) == []
    assert len(fake_api.inbox()) == 2


def test_a_second_token_rejection_is_reported_as_transient(client, fake_api):
    api = client()
    fake_api.inject(CUSTOM, errcode=42001, times=2)
    with pytest.raises(WeChatAPIError) as caught:
        api.send_custom_text("oMember00001", "x")
    assert caught.value.token_problem and caught.value.transient  # the outbox retries later


def test_without_credentials_the_error_says_what_to_set(client):
    with pytest.raises(WeChatAPIError, match="WECHAT_APPID"):
        client(wechat_appid="").access_token()


def test_a_failing_token_endpoint_is_transient(client, fake_api):
    fake_api.inject(STABLE, http_status=502)
    with pytest.raises(WeChatAPIError) as caught:
        client().access_token()
    assert caught.value.transient


def test_a_token_another_process_replaced_costs_one_refused_call_and_no_fetch(client, fake_api):
    """A client keeps the shared token in memory for a few seconds; when another process
    has replaced it meanwhile, WeChat's 40001 makes the client read the new one."""
    first, second = client(), client()
    first.send_custom_text("oMember00001", "一")
    old = first.access_token()
    renewed = second.access_token(rejected=old)  # the other process forces a new token
    assert renewed != old
    first.send_custom_text("oMember00001", "二")
    sends = fake_api.calls_to(CUSTOM)
    assert [c["response"]["errcode"] for c in sends] == [0, 40001, 0]
    assert sends[2]["query"]["access_token"] == renewed
    assert first.token_fetches == 1 and second.token_fetches == 1
    assert [m["content"] for m in fake_api.inbox()] == ["一", "二"]


def test_the_environments_proxy_settings_still_apply(client, fake_api, monkeypatch):
    """The session reads HTTP(S)_PROXY and NO_PROXY once instead of on every call; it
    still honours them."""
    monkeypatch.setenv("HTTP_PROXY", "http://127.0.0.1:9")  # nothing listens there
    monkeypatch.delenv("NO_PROXY", raising=False)
    monkeypatch.delenv("no_proxy", raising=False)
    with pytest.raises(WeChatAPIError) as caught:
        client().access_token()
    assert caught.value.transient and fake_api.calls == []
    monkeypatch.setenv("NO_PROXY", "127.0.0.1")
    client().send_custom_text("oMember00001", "你好")
    assert len(fake_api.inbox()) == 1
