"""The public /simulator: test members only, and only for this machine unless BOT_SIMULATOR=1."""
from __future__ import annotations

import pytest

from settings import Settings
from storage import members

REMOTE = {"REMOTE_ADDR": "203.0.113.9"}


@pytest.fixture
def dev_app(make_app):
    """No AppID: the simulator is on by default, as after the README's run command."""
    return make_app(wechat_appid="", simulator=None)


def send(client, openid: str, text: str = "帮助", **kw):
    return client.post("/simulator/send", json={"openid": openid, "text": text}, **kw)


def test_a_local_client_chats_as_a_test_member(dev_app):
    client = dev_app.test_client()
    assert client.get("/simulator").status_code == 200
    resp = send(client, "sim-member-001")
    assert resp.status_code == 200 and resp.get_json()["reply"]
    assert client.get("/simulator/inbox?openid=sim-member-001").status_code == 200


@pytest.mark.parametrize("openid", ["oMemberA0001", "o6_bmjrPTlm6_2sgVt7hMZOPfL2M", "simmer-01",
                                    "admin-sim-1"])
def test_it_never_speaks_or_reads_as_a_real_member(dev_app, openid):
    client = dev_app.test_client()
    resp = send(client, openid, "取消报名")
    assert resp.status_code == 400 and "sim-" in resp.get_json()["error"]
    assert client.get(f"/simulator/inbox?openid={openid}").status_code == 400
    assert members.get(dev_app.extensions["chengcheng"].db(), openid) is None


@pytest.mark.parametrize("environ,headers", [
    (REMOTE, {}),
    ({"REMOTE_ADDR": "10.0.0.8"}, {}),
    ({"REMOTE_ADDR": "127.0.0.1"}, {"X-Forwarded-For": "203.0.113.9"}),  # nginx on this host
    ({"REMOTE_ADDR": "127.0.0.1"}, {"X-Real-IP": "203.0.113.9"}),
])
def test_other_clients_do_not_find_it(dev_app, environ, headers):
    client = dev_app.test_client()
    for resp in (client.get("/simulator", environ_base=environ, headers=headers),
                 send(client, "sim-member-001", environ_base=environ, headers=headers),
                 client.get("/simulator/inbox?openid=sim-member-001", environ_base=environ,
                            headers=headers)):
        assert resp.status_code == 404


def test_bot_simulator_1_opens_it_to_other_clients_still_as_test_members_only(make_app):
    client = make_app(wechat_appid="", simulator=True).test_client()
    assert client.get("/simulator", environ_base=REMOTE).status_code == 200
    assert send(client, "sim-member-002", environ_base=REMOTE).status_code == 200
    assert send(client, "oMemberA0001", environ_base=REMOTE).status_code == 400


def test_only_an_explicit_setting_makes_it_public():
    assert not Settings.from_env({}).simulator_public
    assert Settings.from_env({"BOT_SIMULATOR": "1"}).simulator_public
    assert not Settings.from_env({"BOT_SIMULATOR": "0"}).simulator_enabled
    local_dev = Settings(wechat_appid="wxlocaldev", local_fake_wechat=True).validated()
    assert local_dev.simulator_enabled and not local_dev.simulator_public
