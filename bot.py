"""诚城青年助手: `create_app()` and the command line (`python bot.py --help`)."""
from __future__ import annotations

import logging
import sys

import click
from flask import Flask, jsonify, request

from settings import Settings, SettingsError

log = logging.getLogger("chengcheng")
ERROR_WORDS = {400: "请求有误", 403: "签名校验失败", 404: "没有这个页面", 405: "不支持的请求方法",
               413: "请求体过大", 500: "服务器内部错误"}


def create_app(settings: Settings | None = None) -> Flask:
    """Build the app on its SQLite file (created and migrated here). Never starts the scheduler."""
    from console import init_app as init_console
    from runtime import Runtime
    from wechat.webhook import bp as wechat_bp

    settings = settings or Settings.from_env()
    rt = Runtime(settings)
    app = Flask(__name__)
    app.config.update(SECRET_KEY=rt.secret_key, MAX_CONTENT_LENGTH=settings.max_body_bytes,
                      SESSION_COOKIE_HTTPONLY=True, SESSION_COOKIE_SAMESITE="Lax")
    app.extensions["chengcheng"] = rt
    app.register_blueprint(wechat_bp)
    if settings.simulator_enabled:
        from simulator.web import bp as simulator_bp

        app.register_blueprint(simulator_bp)
    init_console(app)
    _register_errors(app)

    @app.get("/healthz")
    def healthz():
        rt.db().execute("SELECT 1").fetchone()
        return jsonify(status="ok")

    @app.get("/")
    def index():
        links = ['<a href="/admin/">管理后台</a>']
        if settings.simulator_enabled:
            links.append('<a href="/simulator">聊天模拟器</a>')
        return ("<!doctype html><meta charset=utf-8><title>诚城青年助手</title>"
                "<h1>诚城青年助手</h1><p>" + " · ".join(links) + "</p>")

    return app


def _register_errors(app: Flask) -> None:
    """Every error is a short answer without a traceback; WeChat only reads the status."""
    from werkzeug.exceptions import HTTPException

    from console.auth import error_page as console_error_page

    @app.errorhandler(HTTPException)
    def http_error(exc: HTTPException):
        words = ERROR_WORDS.get(exc.code or 500, exc.name)
        detail = exc.description if exc.code == 400 and exc.description else ""
        if request.path.startswith("/admin/") and exc.code in (400, 403, 404):
            return console_error_page(exc)  # e.g. an unknown /admin URL, which no blueprint owns
        return f"{exc.code} {words}" + (f"：{detail}" if detail else ""), exc.code

    @app.errorhandler(Exception)
    def crash(exc: Exception):
        log.exception("unhandled error on %s", request.path)
        return "500 服务器内部错误", 500


def _settings() -> Settings:
    try:
        return Settings.from_env()
    except SettingsError as exc:
        raise click.ClickException(str(exc)) from exc


def _setup_logging(settings: Settings) -> None:
    logging.basicConfig(level=getattr(logging, settings.log_level.upper(), logging.INFO),
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")


@click.group(invoke_without_command=True)
@click.pass_context
def cli(ctx: click.Context) -> None:
    """诚城青年助手：微信公众号机器人。不带子命令时等同于 `serve`。"""
    if ctx.invoked_subcommand is None:
        ctx.invoke(serve)


@cli.command()
@click.option("--host", default="127.0.0.1", show_default=True, help="监听地址")
@click.option("--port", default=8000, show_default=True, type=int, help="监听端口")
@click.option("--threads", default=16, show_default=True, type=int, help="waitress 工作线程数")
@click.option("--no-scheduler", is_flag=True, help="不在本进程运行提醒与推送（另起 worker 时用）")
def serve(host: str, port: int, threads: int, no_scheduler: bool) -> None:
    """Serve the webhook (and console, simulator) on waitress, a production WSGI server."""
    from waitress import serve as waitress_serve

    settings = _settings()
    _setup_logging(settings)
    fake = None
    if not settings.wechat_appid and settings.wechat_api_base == "https://api.weixin.qq.com":
        fake, settings = _local_fake_wechat(settings)
    app = create_app(settings)
    rt = app.extensions["chengcheng"]
    _print_banner(rt, host, port, fake)
    scheduler = None
    if not no_scheduler:
        from scheduler import start_in_process

        scheduler = start_in_process(rt)
    try:
        waitress_serve(app, host=host, port=port, threads=threads, ident="chengcheng")
    finally:
        if scheduler:
            scheduler.stop()
        if fake:
            fake.stop()


def _local_fake_wechat(settings: Settings):
    """Without a real account, pushes go to a fake WeChat API on loopback (see README)."""
    from dataclasses import replace

    from wechat.fake_api import FakeWeChatAPI

    fake = FakeWeChatAPI(appid="wxlocaldev", secret="localdev").start()
    simulator = settings.simulator_enabled  # decided by the real settings, before the fake AppID
    return fake, replace(settings, wechat_appid="wxlocaldev", wechat_secret="localdev",
                         wechat_api_base=fake.url, simulator=simulator)


def _print_banner(rt, host: str, port: int, fake) -> None:
    base = f"http://{host}:{port}"
    click.echo(f"诚城青年助手 listening on {base}  (data: {rt.settings.db_path})")
    click.echo(f"  WeChat URL : {base}/wechat")
    if rt.using_dev_token:
        click.echo(f"  Token      : {rt.token}  (development token; set WECHAT_TOKEN in production)")
    if rt.settings.simulator_enabled:
        click.echo(f"  Simulator  : {base}/simulator   or: python bot.py chat --url {base}")
    click.echo(f"  Console    : {base}/admin/   (python bot.py admin add NAME)")
    if fake:
        click.echo(f"  Pushes     : local fake WeChat API at {fake.url} (no WECHAT_APPID set)")


@cli.command()
@click.argument("question")
@click.option("--openid", default="cli-user", show_default=True, help="以哪个成员身份提问")
def ask(question: str, openid: str) -> None:
    """Send one message through the same router as the webhook and print the reply."""
    from handlers import pipeline
    from runtime import Runtime
    from simulator.client import text_xml
    from wechat.messages import parse

    settings = _settings()
    rt = Runtime(settings)
    reply = pipeline.handle(rt, parse(text_xml(openid, question)))
    click.echo(reply if reply is not None else "（无回复）")
    rt.executor.shutdown(wait=True)


@cli.command()
@click.option("--url", default=None, help="正在运行的机器人地址，如 http://127.0.0.1:8000；不填则在本进程内运行")
@click.option("--openid", default="sim-member-001", show_default=True, help="模拟成员的 openid")
def chat(url: str | None, openid: str) -> None:
    """A terminal chat as a test member: real signed XML, replies and pushed messages shown."""
    from simulator.terminal import run

    run(_settings(), url=url, openid=openid)


@cli.group()
def menu() -> None:
    """The account's custom menu (wechat/menu.yaml)."""


@menu.command("push")
def menu_push() -> None:
    """Create the custom menu through WeChat's API (/cgi-bin/menu/create)."""
    from runtime import Runtime
    from wechat import menu as menu_file
    from wechat.api import WeChatAPI, WeChatAPIError

    settings = _settings()
    rt = Runtime(settings)
    api = WeChatAPI(settings, rt.db, rt.clock.now)
    try:
        body = menu_file.to_wechat(rt.menu)
        api.create_menu(body)
    except (menu_file.MenuError, WeChatAPIError) as exc:
        raise click.ClickException(f"菜单创建失败：{exc}") from exc
    click.echo(f"菜单已创建：{len(body['button'])} 个一级菜单")


@menu.command("show")
def menu_show() -> None:
    """Print the menu JSON that `menu push` would send."""
    import json

    from wechat import menu as menu_file

    click.echo(json.dumps(menu_file.to_wechat(menu_file.load()), ensure_ascii=False, indent=2))


@cli.command("fake-wechat")
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=8900, show_default=True, type=int)
@click.option("--appid", default="wxfakeappid", show_default=True)
@click.option("--secret", default="fakesecret", show_default=True)
def fake_wechat(host: str, port: int, appid: str, secret: str) -> None:
    """Run a fake WeChat API on loopback (point WECHAT_API_BASE at it) for local trials."""
    from wechat.fake_api import main

    main(host=host, port=port, appid=appid, secret=secret)


def _register_feature_commands() -> None:
    """Commands that live with their feature (knowledge, activities, pushes, console)."""
    import activities.cli
    import console.cli
    import console.inbox_cli
    import knowledge.cli
    import scheduler.cli

    for feature in (knowledge.cli, activities.cli, scheduler.cli, console.cli, console.inbox_cli):
        feature.register(cli)


_register_feature_commands()

if __name__ == "__main__":
    sys.exit(cli())
