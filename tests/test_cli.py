"""The command line and the settings, as a newcomer and an organiser meet them."""
from __future__ import annotations

import os
import re
import shlex
import shutil
import subprocess
import sys
import time
from datetime import timedelta
from pathlib import Path

import click
import pytest
import requests
from click.testing import CliRunner

from activities import service
from bot import cli, command_prefix
from handlers import pipeline
from runtime import Runtime
from settings import Settings, SettingsError, parse_offsets
from simulator.client import WeChatClient, text_xml
from storage import kv, members
from wechat.messages import parse
from tests.conftest import APPID, ROOT, SECRET, TOKEN, free_port

README = (ROOT / "README.md").read_text(encoding="utf-8")


def all_commands(group: click.Group, prefix: str = "") -> list[tuple[str, click.Command]]:
    out = []
    for name, command in group.commands.items():
        out.append((prefix + name, command))
        if isinstance(command, click.Group):
            out += all_commands(command, prefix + name + " ")
    return out


def test_every_command_has_help():
    commands = all_commands(cli)
    names = {name for name, _ in commands}
    assert {"serve", "ask", "chat", "menu push", "ingest", "activity add", "signups",
            "volunteer-record", "broadcast", "deliveries", "worker", "admin add",
            "fake-wechat"} <= names
    for name, command in commands:
        assert (command.help or "").strip(), f"`{name}` has no help"
        result = CliRunner().invoke(cli, [*name.split(), "--help"])
        assert result.exit_code == 0 and "Usage" in result.output


def test_every_setting_is_read_from_the_environment_and_listed_in_the_readme():
    env_names = set(re.findall(r'"((?:WECHAT|BOT)_[A-Z_]+)"', (ROOT / "settings.py").read_text()))
    assert {"WECHAT_TOKEN", "WECHAT_AES_KEY", "WECHAT_APPID", "WECHAT_SECRET", "WECHAT_API_BASE",
            "BOT_DATA_DIR", "BOT_TIMEZONE", "BOT_REMINDER_OFFSETS"} <= env_names
    for name in env_names:
        assert f"`{name}`" in README, f"{name} missing from the README's settings table"


def test_settings_defaults_and_parsing(tmp_path):
    s = Settings.from_env({})
    assert s.wechat_api_base == "https://api.weixin.qq.com" and s.timezone == "Asia/Shanghai"
    assert s.data_dir == ROOT / "data" and s.reminder_offsets == parse_offsets("24h,2h")
    s = Settings.from_env({"WECHAT_API_BASE": "http://127.0.0.1:9/", "BOT_REMINDER_OFFSETS":
                           "30m, 1d,90s", "BOT_DATA_DIR": str(tmp_path)})
    assert s.wechat_api_base == "http://127.0.0.1:9"
    assert [o.total_seconds() for o in s.reminder_offsets] == [86400, 1800, 90]
    for bad in ({"BOT_TIMEZONE": "Mars/Base"}, {"WECHAT_AES_KEY": "short"},
                {"BOT_REMINDER_OFFSETS": "soon"}, {"BOT_REPLY_BUDGET": "four"}):
        with pytest.raises(SettingsError):
            Settings.from_env(bad)


def test_times_are_stored_in_utc_and_shown_in_bot_timezone():
    from clock import fmt_local, from_db, parse_local, to_db

    s = Settings.from_env({"BOT_TIMEZONE": "Asia/Shanghai"})
    moment = parse_local("2026-05-01 09:30", s.tz)
    assert to_db(moment) == "2026-05-01T01:30:00Z"
    assert fmt_local(from_db("2026-05-01T01:30:00Z"), s.tz) == "5月1日(周五) 09:30"


def test_ask_runs_one_message_through_the_router(settings):
    env = {"BOT_DATA_DIR": str(settings.data_dir), "WECHAT_TOKEN": TOKEN}
    result = CliRunner().invoke(cli, ["ask", "青春志愿服务谁牵头"], env=env)
    assert result.exit_code == 0 and "奉贤" in result.output and "沪城管团〔2025〕2号" in result.output


def test_menu_push_creates_the_menu_through_the_api(settings, fake_api):
    env = {"BOT_DATA_DIR": str(settings.data_dir), "WECHAT_TOKEN": TOKEN, "WECHAT_APPID": APPID,
           "WECHAT_SECRET": SECRET, "WECHAT_API_BASE": fake_api.url}
    result = CliRunner().invoke(cli, ["menu", "push"], env=env)
    assert result.exit_code == 0, result.output
    menu = fake_api.menu
    assert len(menu["button"]) == 3
    keys = {b["key"] for top in menu["button"] for b in top.get("sub_button", [])}
    assert {"SIGNUP", "MY_SIGNUPS", "HELP"} <= keys
    assert all("command" not in b for top in menu["button"] for b in top["sub_button"])
    fake_api.inject("/cgi-bin/menu/create", errcode=40016)
    failed = CliRunner().invoke(cli, ["menu", "push"], env=env)
    assert failed.exit_code != 0 and "菜单创建失败" in failed.output


def test_development_token_is_generated_once_and_kept(tmp_path, fake_api):
    s = Settings(data_dir=tmp_path, wechat_api_base=fake_api.url).validated()
    first = Runtime(s)
    second = Runtime(s)
    assert first.using_dev_token and first.dev_token_created and not second.dev_token_created
    assert first.token == second.token and len(first.token) == 32
    first.executor.shutdown()
    second.executor.shutdown()


def test_the_readme_run_command_serves_webhook_simulator_and_pushes(tmp_path):
    """`python bot.py` with nothing configured: waitress, a dev token, the simulator, a local
    fake WeChat API for pushes, and the scheduler."""
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("WECHAT_", "BOT_"))}
    env["BOT_DATA_DIR"] = str(tmp_path)
    proc = subprocess.Popen([sys.executable, str(ROOT / "bot.py"), "serve", "--port", str(port)],
                            cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            text=True)
    try:
        base = f"http://127.0.0.1:{port}"
        deadline = time.time() + 30
        while time.time() < deadline:
            try:
                if requests.get(base + "/healthz", timeout=1).ok:
                    break
            except requests.RequestException:
                time.sleep(0.2)
        assert requests.get(base + "/simulator", timeout=5).status_code == 200
        token = kv.read_secret_file(tmp_path, "dev_wechat_token")
        client = WeChatClient(token, url=base)
        assert "虹口" in client.text("oNewcomer01", "法治专研谁牵头").text
        assert requests.post(base + "/simulator/send", json={"openid": "sim-newcomer02",
                                                             "text": "体检几月"},
                             timeout=10).json()["reply"].count("9月") == 1
    finally:
        proc.terminate()
        out, _ = proc.communicate(timeout=15)
    assert "Token" in out and token in out and "/simulator" in out
    assert "fake WeChat API" in out
    # the banner's commands run as printed, with the interpreter that runs the bot
    command = re.search(r"Commands\s*: (.+) --help", out).group(1)
    assert f"{command} chat --url {base}" in out and f"{command} admin add NAME" in out
    helped = subprocess.run([*shlex.split(command), "--help"], cwd=ROOT, env=env,
                            capture_output=True, text=True, timeout=60)
    assert helped.returncode == 0 and "serve" in helped.stdout


def test_terminal_chat_answers_and_shows_what_is_pushed(tmp_path):
    """`python bot.py chat` in-process: a member signs up, another cancels, the first is promoted
    and sees the push in the terminal."""
    settings = Settings(data_dir=tmp_path).validated()
    rt = Runtime(settings)
    db = rt.db()
    now = rt.clock.now()
    activity_id = service.create_activity(db, title="周末护河志愿活动", now=now,
                                          start=now + timedelta(days=3), capacity=1,
                                          location="苏州河")
    service.open_activity(db, activity_id, now)
    members.ensure(db, "sim-first-00", now)
    service.sign_up(db, activity_id, "sim-first-00", now)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("WECHAT_", "BOT_"))}
    env["BOT_DATA_DIR"] = str(tmp_path)
    script = "/follow\n绑定 张三 静安区城管执法局\n报名 护河\n体检几月\n/quit\n"
    chat = subprocess.run([sys.executable, str(ROOT / "bot.py"), "chat", "--openid", "sim-second-00"],
                          input=script, capture_output=True, text=True, cwd=ROOT, env=env,
                          timeout=60)
    assert chat.returncode == 0, chat.stderr
    assert "候补第1位" in chat.stdout and "9月" in chat.stdout
    # the first member cancels; the next chat session of the second one shows the promotion push
    assert "已取消" in pipeline.handle(rt, parse(text_xml("sim-first-00", "取消报名")))
    rt.executor.shutdown()
    again = subprocess.run([sys.executable, str(ROOT / "bot.py"), "chat", "--openid",
                            "sim-second-00"], input="我的报名\n/quit\n", capture_output=True,
                           text=True, cwd=ROOT, env=env, timeout=60)
    pushes = [line for line in again.stdout.splitlines() if line.startswith("【推送】")]
    assert len(pushes) == 1 and "周末护河志愿活动" in pushes[0]


# --- found when tried as a new user: which python, which database -------------------------

def test_the_banner_names_the_venv_python_when_it_is_not_activated(monkeypatch, tmp_path):
    exe = os.path.abspath(sys.executable)
    monkeypatch.chdir(ROOT)
    monkeypatch.setenv("PATH", str(Path(exe).parent) + os.pathsep + os.environ.get("PATH", ""))
    python, script = command_prefix().split()
    assert python in ("python", "python3") and script == "bot.py"  # activated: `python bot.py`
    monkeypatch.setenv("PATH", str(tmp_path))  # not activated: no `python` that is this one
    python, script = command_prefix().split()
    assert os.path.abspath(ROOT / python) == exe and script == "bot.py"
    monkeypatch.chdir(tmp_path)  # from another folder: the script's whole path
    assert command_prefix().split()[1] == str(ROOT / "bot.py")


def test_the_default_data_dir_is_the_project_folder_not_the_current_one(monkeypatch, tmp_path):
    monkeypatch.chdir(tmp_path)
    assert Settings.from_env({}).data_dir == ROOT / "data"
    assert Settings.from_env({"BOT_DATA_DIR": "mine"}).data_dir == tmp_path / "mine"


def test_a_command_run_from_another_folder_uses_and_names_the_projects_database(tmp_path):
    """An admin made from one folder can log in to the server started from another."""
    project = tmp_path / "chengcheng"
    skip = shutil.ignore_patterns(".git", ".venv", "__pycache__", "test-artifacts", "*.db*")
    shutil.copytree(ROOT, project, ignore=lambda folder, names: set(skip(folder, names)) | (
        {"data"} if folder == str(ROOT) else set()))  # the project's data/, not knowledge/data/
    elsewhere = tmp_path / "home"
    elsewhere.mkdir()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("WECHAT_", "BOT_"))}
    database = project / "data" / "bot.db"
    made = subprocess.run([sys.executable, str(project / "bot.py"), "admin", "add", "李书记",
                           "--password", "correct-horse-1"], cwd=elsewhere, env=env,
                          capture_output=True, text=True, timeout=120)
    assert made.returncode == 0, made.stderr
    assert f"数据库：{database}（新建的空数据库）" in made.stderr
    assert database.exists() and not (elsewhere / "data").exists()
    listed = subprocess.run([sys.executable, "chengcheng/bot.py", "admin", "list"], cwd=tmp_path,
                            env=env, capture_output=True, text=True, timeout=120)
    assert listed.returncode == 0 and "李书记" in listed.stdout
    assert f"数据库：{database}\n" in listed.stderr  # the same one, not new


def test_the_readme_says_once_how_to_run_python_from_the_venv():
    assert "source .venv/bin/activate" in README and "`.venv/bin/python bot.py" in README
