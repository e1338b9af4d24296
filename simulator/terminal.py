"""`python bot.py chat`: a terminal chat as a test member (real signed XML, pushes shown)."""
from __future__ import annotations

import threading
import time

import click
import requests

from settings import Settings
from simulator.client import WeChatClient

POLL_SECONDS = 2.0
HELP = ("本终端的命令（不会发给机器人）：\n"
        "  /follow     关注公众号（subscribe 事件）\n"
        "  /menu       列出菜单按钮；/menu KEY 点击该按钮\n"
        "  /help       显示这段说明\n"
        "  /quit       退出\n"
        "其他内容都作为成员的消息发给机器人（想看机器人的帮助就发“帮助”）。")


def menu_lines(menu: dict) -> list[str]:
    """The custom menu as '  KEY  一级 › 二级 → 命令' lines, for `/menu` without a key."""
    lines = []
    for top in menu.get("button", []):
        for button in top.get("sub_button") or [top]:
            if button.get("type") == "click":
                path = f"{top['name']} › {button['name']}" if button is not top else top["name"]
                lines.append(f"  {button['key']:<20} {path} → {button.get('command', '')}")
    return lines


def local_command(line: str, menu: dict) -> str | None:
    """The terminal's own answer to a /command (None: send the line to the bot)."""
    word = line.split(" ", 1)[0]
    if word in ("/help", "/?"):
        return HELP
    if line == "/menu":
        return "菜单按钮（/menu KEY 点击）：\n" + "\n".join(menu_lines(menu))
    if word.startswith("/") and word not in ("/follow", "/menu", "/quit", "/exit"):
        return f"没有 {word} 这个终端命令。\n" + HELP
    return None


def run(settings: Settings, *, url: str | None, openid: str) -> None:
    app = scheduler = fake = None
    if url is None:
        from bot import _local_fake_wechat, create_app
        from scheduler import start_in_process

        if not settings.wechat_appid:
            fake, settings = _local_fake_wechat(settings)
        app = create_app(settings)
        rt = app.extensions["chengcheng"]
        token = rt.token
        scheduler = start_in_process(rt)  # pushes (promotions, reminders) show up here too
        client = WeChatClient(token, app=app, aes_key=settings.wechat_aes_key or None,
                              appid=settings.wechat_appid)
        click.echo(f"（本进程内运行，数据：{settings.db_path}）")
    else:
        from storage import kv

        token = settings.wechat_token or kv.read_secret_file(settings.data_dir, "dev_wechat_token")
        if not token:
            raise click.ClickException("不知道服务器的 Token：请设置 WECHAT_TOKEN，或在同一数据目录下运行")
        client = WeChatClient(token, url=url, aes_key=settings.wechat_aes_key or None,
                              appid=settings.wechat_appid)
    click.echo(f"以 {openid} 的身份聊天。输入内容回车发送；/follow 关注，/menu 看菜单，/help 终端命令，/quit 退出。")
    from wechat import menu as menu_file

    menu = menu_file.load()
    stop = threading.Event()
    if url:
        threading.Thread(target=_poll_pushes, args=(url, openid, stop), daemon=True).start()
    else:
        seen = _latest_push(app, openid)  # show only what this session causes
    try:
        while True:
            try:
                line = input("我 > ").strip()
            except EOFError:
                break
            if not line:
                continue
            if line in ("/quit", "/exit"):
                break
            own = local_command(line, menu)
            if own is not None:
                click.echo(own)
                continue
            if line == "/follow":
                result = client.event(openid, "subscribe")
            elif line.startswith("/menu "):
                result = client.event(openid, "CLICK", line.split(" ", 1)[1].strip())
            else:
                result = client.text(openid, line)
            if result.status != 200:
                click.echo(f"[服务器返回 {result.status}] {result.body[:200]}")
            else:
                click.echo("助手 > " + (result.text or "（无回复）"))
            if app is not None:
                time.sleep(0.5)  # give the dispatcher a moment to send what the message caused
                seen = _show_local_pushes(app, openid, seen)
    finally:
        stop.set()
        if scheduler:
            scheduler.stop()
        if fake:
            fake.stop()


def _latest_push(app, openid: str) -> int:
    from simulator.web import pushed_since

    with app.app_context():
        return max((m["id"] for m in pushed_since(openid, 0)), default=0)


def _show_local_pushes(app, openid: str, after: int) -> int:
    """Print pushes newer than `after`; returns the new cursor."""
    from simulator.web import pushed_since

    with app.app_context():
        for m in pushed_since(openid, after):
            click.echo("【推送】" + m["text"])
            after = max(after, m["id"])
    return after


def _poll_pushes(url: str, openid: str, stop: threading.Event) -> None:
    after = None
    while not stop.is_set():
        try:
            resp = requests.get(url.rstrip("/") + "/simulator/inbox",
                                params={"openid": openid, "after": after or 0}, timeout=5)
            messages = resp.json().get("messages", []) if resp.ok else []
        except (requests.RequestException, ValueError):
            messages = []
        for m in messages:
            if after is not None:
                click.echo("\n【推送】" + m["text"] + "\n我 > ", nl=False)
            after = max(after or 0, m["id"])
        after = after or 0
        time.sleep(POLL_SECONDS)
