"""诚城青年助手: `create_app()` and the command line (`python bot.py --help`)."""
from __future__ import annotations

import gc
import logging
import os
import shutil
import sys
import time
from pathlib import Path

import click
from flask import Flask, jsonify, request
from flask.sessions import SecureCookieSessionInterface

from settings import Settings, SettingsError

log = logging.getLogger("chengcheng")
ERROR_WORDS = {400: "请求有误", 403: "签名校验失败", 404: "没有这个页面", 405: "不支持的请求方法",
               413: "请求体过大", 500: "服务器内部错误", 503: "服务暂时不可用，请稍后重试"}
UPLOAD_SLACK_BYTES = 64 * 1024  # multipart headers around an uploaded file
# How long a thread keeps the GIL while others wait (Python's default is 5 ms). A request
# thread that returns from an SQLite call queues for the GIL behind busy ones, and inside the
# write lock every process's writers queue behind it: shorter turns cut the webhook's p99.
SWITCH_INTERVAL = 0.0002
# waitress threads per process. More threads only contend for the GIL (2 processes × 16 on 2
# cores: 1,130 msg/s, p99 41 ms; × 8: 1,530 msg/s, 31 ms; × 4: 1,680 msg/s, 28 ms), but a
# request thread is held while its handlers run (up to BOT_REPLY_BUDGET when they are slow),
# so a few to spare keep the console and WeChat's retries answered meanwhile.
SERVE_THREADS = 8


def create_app(settings: Settings | None = None) -> Flask:
    """Build the app on its SQLite file (created and migrated here). Never starts the scheduler."""
    from console import init_app as init_console
    from handlers.pipeline import settle_dead
    from runtime import Runtime
    from wechat.webhook import Direct, bp as wechat_bp

    settings = settings or Settings.from_env()
    rt = Runtime(settings)
    settle_dead(rt)  # messages a stopped process left unfinished (serve, or a gunicorn worker)
    rt.knowledge.start()  # built before the first request, rebuilt off the request path
    app = Flask(__name__)
    app.session_interface = _SessionInterface()
    app.config.update(SECRET_KEY=rt.secret_key, MAX_CONTENT_LENGTH=settings.max_body_bytes,
                      SESSION_COOKIE_HTTPONLY=True, SESSION_COOKIE_SAMESITE="Lax",
                      SESSION_COOKIE_SECURE=settings.secure_cookie)
    app.extensions["chengcheng"] = rt
    app.register_blueprint(wechat_bp)
    app.wsgi_app = Direct(app, rt)  # POST /wechat without Flask's request context
    if settings.simulator_enabled:
        from simulator.web import bp as simulator_bp

        app.register_blueprint(simulator_bp)
    init_console(app)
    _register_errors(app)

    @app.get("/healthz")
    def healthz():
        from storage.db import check_writable

        problem = check_writable(rt.db(), settings.data_dir)
        if problem:
            log.error("healthz: %s", problem)
            return jsonify(status="error", problem=problem), 503
        return jsonify(status="ok")

    @app.get("/")
    def index():
        links = ['<a href="/admin/">管理后台</a>']
        if settings.simulator_enabled:
            links.append('<a href="/simulator">聊天模拟器</a>')
        return ("<!doctype html><meta charset=utf-8><title>诚城青年助手</title>"
                "<h1>诚城青年助手</h1><p>" + " · ".join(links) + "</p>")

    return app


class _SessionInterface(SecureCookieSessionInterface):
    """Flask's signed-cookie sessions, without building a signer for a request that carries no
    session cookie and saving nothing for one that never touched its session (WeChat's POSTs)."""

    def open_session(self, app: Flask, request):
        if app.secret_key and not request.cookies.get(self.get_cookie_name(app)):
            return self.session_class()
        return super().open_session(app, request)

    def save_session(self, app: Flask, session, response) -> None:
        if session or session.modified or session.accessed:
            super().save_session(app, session, response)


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
        import sqlite3

        if isinstance(exc, sqlite3.OperationalError):  # disk full, read-only, locked
            log.error("database unavailable on %s: %s", request.path, exc)
            return f"503 {ERROR_WORDS[503]}", 503
        log.exception("unhandled error on %s", request.path)
        return "500 服务器内部错误", 500


def _settings() -> Settings:
    try:
        return Settings.from_env()
    except SettingsError as exc:
        raise click.ClickException(str(exc)) from exc


def _setup_logging(settings: Settings) -> None:
    from privacy import install_log_redaction

    install_log_redaction()
    logging.basicConfig(level=getattr(logging, settings.log_level.upper(), logging.INFO),
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")


@click.group(invoke_without_command=True)
@click.pass_context
def cli(ctx: click.Context) -> None:
    """诚城青年助手：微信公众号机器人。不带子命令时等同于 `serve`。"""
    from runtime import Runtime

    Runtime.on_open = _say_database
    ctx.call_on_close(lambda: setattr(Runtime, "on_open", None))
    if ctx.invoked_subcommand is None:
        ctx.invoke(serve)


@cli.command()
@click.option("--host", default="127.0.0.1", show_default=True, help="监听地址")
@click.option("--port", default=8000, show_default=True, type=int, help="监听端口")
@click.option("--threads", default=SERVE_THREADS, show_default=True, type=int,
              help="每个进程的 waitress 工作线程数")
@click.option("--processes", type=click.IntRange(1, 64), default=None,
              help="服务进程数，同一端口（默认 BOT_PROCESSES，即 1；多核服务器设为 CPU 核数）")
@click.option("--no-scheduler", is_flag=True, help="不在本进程运行提醒与推送（另起 worker 时用）")
@click.option("--worker-socket", hidden=True, help="(internal) FD:READY_FD of a --processes worker")
@click.option("--worker-fake-api", hidden=True, help="(internal) the first process's fake API")
def serve(host: str, port: int, threads: int, processes: int | None, no_scheduler: bool,
          worker_socket: str | None, worker_fake_api: str | None) -> None:
    """Serve the webhook (and console, simulator) on waitress, a production WSGI server."""
    from knowledge.data import KnowledgeDataError

    settings = _settings()
    _setup_logging(settings)
    sys.setswitchinterval(SWITCH_INTERVAL)
    processes = processes or settings.processes
    fake = None
    if worker_fake_api:
        settings = _fake_settings(settings, worker_fake_api)
    elif not settings.wechat_appid and settings.wechat_api_base == "https://api.weixin.qq.com":
        fake, settings = _local_fake_wechat(settings)
    if worker_socket:
        import signal

        from runtime import Runtime

        Runtime.on_open = None  # the first process said which database
        signal.signal(signal.SIGINT, lambda *_: os._exit(0))  # Ctrl-C while starting: stop
    try:
        app = create_app(settings)
    except KnowledgeDataError as exc:
        raise click.ClickException(f"知识文件有错，未启动：{exc}（可用 kb check 检查）") from exc
    rt = app.extensions["chengcheng"]
    gc.collect()
    gc.freeze()  # start-up's objects (the engine's index above all) are never scanned again
    if worker_socket:
        from workers import serve_worker

        serve_worker(app, worker_socket, threads)
        return
    workers = None
    if processes > 1:
        from workers import Workers, bind

        try:
            sock = bind(host, port)
            workers = Workers(sock, processes, threads, fake.url if fake else None).start()
        except (OSError, RuntimeError) as exc:
            raise click.ClickException(f"未启动：{exc}") from exc
        server = make_server(app, threads=threads, sockets=[sock], balance=workers.balance)
        workers.go()
    else:
        server = make_server(app, host=host, port=port, threads=threads)
    _print_banner(rt, host, server.effective_port, fake, processes)
    scheduler = None
    if not no_scheduler:
        from scheduler import start_in_process

        scheduler = start_in_process(rt)
    try:
        server.run()
    finally:
        if workers:  # first: a worker that died of the same Ctrl-C is not started again
            workers.stop()
        if scheduler:
            scheduler.stop()
        if fake:
            fake.stop()


class _Sparse:
    """Stands in for waitress's queue logger and lets one warning through per `seconds`:
    waitress warns "Task queue depth is N" for every request that waits for a thread, which
    under a burst is every other request. One line in a while says it; dropping the rest
    before a log record is made (a logging.Filter runs after) saves their cost too."""

    def __init__(self, logger: logging.Logger, seconds: float) -> None:
        self.logger, self.seconds, self.last = logger, seconds, float("-inf")

    def warning(self, msg: str, *args) -> None:
        now = time.monotonic()
        if now - self.last >= self.seconds:
            self.last = now
            self.logger.warning(msg, *args)


QUEUE_LOG = _Sparse(logging.getLogger("waitress.queue"), seconds=10)


def make_server(app: Flask, *, threads: int, host: str = "127.0.0.1", port: int = 0,
                sockets: list | None = None, balance=None):
    """waitress with limits from the settings: bodies near BOT_MAX_BODY (the console upload's
    limit on its own route only), refused as soon as the headers say so, never spooled to disk;
    BOT_CONNECTION_LIMIT connections watched with poll(); idle ones closed after
    BOT_CHANNEL_TIMEOUT. On `sockets` (bound, shared by `serve --processes`) instead of
    host and port; `balance` (workers.Balance) says when this process may accept."""
    import copy

    from waitress.channel import HTTPChannel
    from waitress.parser import HTTPRequestParser
    from waitress.server import create_server

    from console.auth import UPLOAD_ENDPOINTS, UPLOAD_MAX_BYTES

    settings = app.extensions["chengcheng"].settings
    uploads = {rule.rule for rule in app.url_map.iter_rules() if rule.endpoint in UPLOAD_ENDPOINTS}
    where = {"sockets": sockets} if sockets else {"host": host, "port": port}
    server = create_server(
        app, **where, threads=threads, ident="chengcheng",
        connection_limit=settings.connection_limit, channel_timeout=settings.channel_timeout,
        cleanup_interval=max(1, int(settings.channel_timeout // 3)), asyncore_use_poll=True,
        max_request_body_size=UPLOAD_MAX_BYTES + UPLOAD_SLACK_BYTES,
        max_request_header_size=64 * 1024)
    small = copy.copy(server.adj)
    small.max_request_body_size = settings.max_body_bytes + 1  # waitress refuses at >=

    class Parser(HTTPRequestParser):
        def parse_header(self, header_plus):
            super().parse_header(header_plus)
            if self.path not in uploads:
                self.adj = small  # read by received() right after, for this request only

    class Channel(HTTPChannel):
        parser_class = Parser

    server.channel_class = Channel
    if balance is not None:
        from workers import LOOP_SECONDS

        server.adj.asyncore_loop_timeout = LOOP_SECONDS  # set here: waitress parses whole seconds
        accepting = server.readable  # waitress asks before each poll whether to accept

        def readable() -> bool:
            return accepting() and balance.my_turn(len(server.active_channels))

        server.readable = readable
    server.task_dispatcher.queue_logger = QUEUE_LOG
    return server


def _local_fake_wechat(settings: Settings):
    """Without a real account, pushes go to a fake WeChat API on loopback (see README)."""
    from wechat.fake_api import FakeWeChatAPI

    fake = FakeWeChatAPI(appid="wxlocaldev", secret="localdev").start()
    return fake, _fake_settings(settings, fake.url)


def _fake_settings(settings: Settings, url: str) -> Settings:
    from dataclasses import replace

    return replace(settings, wechat_appid="wxlocaldev", wechat_secret="localdev",
                   wechat_api_base=url, local_fake_wechat=True)


def _say_database(path: Path, created: bool) -> None:
    """A command that opens the database says which one (on stderr: stdout stays the result)."""
    click.echo(f"数据库：{path}" + ("（新建的空数据库）" if created else ""), err=True)


def command_prefix() -> str:
    """How to run this bot.py with the interpreter that is running it, from the current folder:
    `python bot.py` in an activated venv, `.venv/bin/python bot.py` outside it."""
    exe = os.path.abspath(sys.executable)
    python = next((name for name in ("python", "python3")
                   if (found := shutil.which(name)) and os.path.abspath(found) == exe), None)
    return f"{python or _shortest(Path(exe))} {_shortest(Path(__file__).resolve())}"


def _shortest(path: Path) -> str:
    try:
        return str(path.relative_to(Path.cwd().resolve()))
    except ValueError:
        return str(path)


def _print_banner(rt, host: str, port: int, fake, processes: int = 1) -> None:
    base = f"http://{host}:{port}"
    run = command_prefix()
    also = f", {processes} processes" if processes > 1 else ""
    click.echo(f"诚城青年助手 listening on {base}  (data: {rt.settings.db_path}{also})")
    click.echo(f"  WeChat URL : {base}/wechat")
    if rt.using_dev_token:
        click.echo(f"  Token      : {rt.token}  (development token; set WECHAT_TOKEN in production)")
    if rt.settings.simulator_enabled:
        click.echo(f"  Simulator  : {base}/simulator   or: {run} chat --url {base}")
    click.echo(f"  Console    : {base}/admin/   ({run} admin add NAME)")
    click.echo(f"  Commands   : {run} --help")
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
    rt.knowledge.load()  # the files and the database's entries, as the running bot has them
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
    import alliance.cli
    import console.cli
    import console.inbox_cli
    import knowledge.cli
    import scheduler.cli

    for feature in (knowledge.cli, activities.cli, scheduler.cli, console.cli, alliance.cli,
                    console.inbox_cli):
        feature.register(cli)


_register_feature_commands()

if __name__ == "__main__":
    sys.exit(cli())
