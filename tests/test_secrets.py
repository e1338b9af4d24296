"""Generated secrets stay out of bot.db (a copy of it opens nothing), and no log line, at any
level, carries the AppSecret or an access_token."""
from __future__ import annotations

import logging
import stat
from dataclasses import replace

import pytest
import requests

from runtime import Runtime
from settings import Settings
from storage import kv, migrate, open_db
from tests.conftest import SECRET, free_port
from wechat.api import WeChatAPI, WeChatAPIError

KEYS = ("console_secret_key", "dev_wechat_token")


def database_bytes(folder) -> bytes:
    db = open_db(folder / "bot.db")
    db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    wal = folder / "bot.db-wal"
    return (folder / "bot.db").read_bytes() + (wal.read_bytes() if wal.exists() else b"")


def runtime(folder, **settings) -> Runtime:
    rt = Runtime(Settings(data_dir=folder, **settings).validated())
    rt.executor.shutdown()
    return rt


def test_generated_secrets_live_in_private_files_not_in_the_database(tmp_path):
    first, second = runtime(tmp_path), runtime(tmp_path)
    assert (first.secret_key, first.token) == (second.secret_key, second.token)
    assert first.dev_token_created and not second.dev_token_created
    assert len(first.secret_key) == 64 and len(first.token) == 32
    for key, value in zip(KEYS, (first.secret_key, first.token)):
        path = kv.secret_path(tmp_path, key)
        assert path.read_text().strip() == value
        assert stat.S_IMODE(path.stat().st_mode) == 0o600
        assert kv.get(open_db(tmp_path / "bot.db"), key) is None
    data = database_bytes(tmp_path)
    assert first.secret_key.encode() not in data and first.token.encode() not in data


def test_secrets_an_older_version_kept_in_the_database_are_taken_out(tmp_path):
    db = open_db(tmp_path / "bot.db")
    migrate(db)
    old_key, old_token = "k" * 64, "t" * 32
    kv.put(db, "console_secret_key", old_key, _now())
    kv.put(db, "dev_wechat_token", old_token, _now())
    rt = runtime(tmp_path)
    assert rt.token == old_token  # the token WeChat's test account was given keeps working
    assert rt.secret_key != old_key  # every earlier copy of bot.db holds the old key: replaced
    assert [kv.get(db, key) for key in KEYS] == [None, None]
    data = database_bytes(tmp_path)
    assert old_key.encode() not in data and old_token.encode() not in data
    assert runtime(tmp_path).secret_key == rt.secret_key


def test_a_set_bot_secret_key_is_used_and_nothing_is_generated_for_it(tmp_path):
    rt = runtime(tmp_path, secret_key="from-the-environment", wechat_token="tok")
    assert rt.secret_key == "from-the-environment" and rt.token == "tok"
    assert not any(kv.secret_path(tmp_path, key).exists() for key in KEYS)


def test_a_loose_file_mode_is_tightened(tmp_path):
    runtime(tmp_path)
    path = kv.secret_path(tmp_path, "console_secret_key")
    path.chmod(0o644)
    runtime(tmp_path)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600


def _now():
    from datetime import datetime, timezone

    return datetime.now(timezone.utc)


@pytest.fixture
def debug_logs(caplog):
    caplog.set_level(logging.DEBUG)
    return caplog


@pytest.mark.parametrize("stable", [False, True])
def test_debug_logs_of_real_calls_never_show_the_appsecret_or_the_token(debug_logs, settings,
                                                                      fake_api, stable):
    rt = runtime(settings.data_dir, **{k: getattr(settings, k) for k in (
        "wechat_token", "wechat_appid", "wechat_secret", "wechat_api_base")},
        wechat_stable_token=stable)
    api = WeChatAPI(rt.settings, rt.db, rt.clock.now)
    api.send_custom_text("oMember00001", "你好")
    fake_api.expire_tokens()
    api.send_custom_text("oMember00001", "再来")
    tokens = {c["query"].get("access_token") for c in fake_api.calls} - {None}
    assert tokens and "access_token=***" in debug_logs.text  # urllib3 did log the URLs
    assert SECRET not in debug_logs.text
    assert not [t for t in tokens if t in debug_logs.text]


def test_a_failed_call_logged_with_its_traceback_shows_no_secret(debug_logs, settings):
    dead = replace(settings, wechat_api_base=f"http://127.0.0.1:{free_port()}",
                   wechat_stable_token=False)
    rt = runtime(dead.data_dir, wechat_token="t", wechat_appid="wx", wechat_secret=SECRET,
                 wechat_api_base=dead.wechat_api_base, wechat_stable_token=False)
    api = WeChatAPI(rt.settings, rt.db, rt.clock.now)
    try:
        requests.get(dead.wechat_api_base + f"/cgi-bin/token?appid=wx&secret={SECRET}", timeout=2)
    except requests.RequestException:
        logging.getLogger("chengcheng").exception("token fetch failed")
    with pytest.raises(WeChatAPIError):
        api.access_token()
    assert "token fetch failed" in debug_logs.text and "secret=***" in debug_logs.text
    assert SECRET not in debug_logs.text


def test_records_rebuilt_from_a_dict_are_redacted_too(settings):
    from privacy import install_log_redaction

    install_log_redaction()
    record = logging.makeLogRecord({"msg": "GET /cgi-bin/token?secret=%s", "args": (SECRET,),
                                    "exc_text": f"url: /x?access_token=abc&secret={SECRET}"})
    assert SECRET not in record.getMessage() and SECRET not in record.exc_text
    assert "access_token=***" in logging.Formatter().format(record)
