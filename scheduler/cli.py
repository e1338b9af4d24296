"""Commands for pushes: `broadcast`, `deliveries`, `worker` (registered by bot.py)."""
from __future__ import annotations

import signal
import threading

import click

from clock import fmt_local, from_db


def _runtime():
    from bot import _settings, _setup_logging
    from runtime import Runtime

    settings = _settings()
    _setup_logging(settings)
    return Runtime(settings)


def register(cli: click.Group) -> None:
    cli.add_command(broadcast)
    cli.add_command(deliveries_command)
    cli.add_command(worker)


@click.command()
@click.option("--text", required=True, help="通知内容（最多 600 字）")
@click.option("--to", "to", default="all", show_default=True,
              help="发送范围：all | group:<共同体> | activity:<活动编号>")
@click.option("--at", default=None, help="定时发送，格式 \"YYYY-MM-DD HH:MM\"（BOT_TIMEZONE）；不填立即发送")
@click.option("--title", default="通知", show_default=True, help="通知标题（模板消息 first 字段）")
def broadcast(text: str, to: str, at: str | None, title: str) -> None:
    """Queue a notice for all members, a 共同体 or an activity's sign-ups; the worker sends it."""
    from scheduler.broadcast import BroadcastError, queue
    from storage import leases

    rt = _runtime()
    try:
        queued = queue(rt, text, to, at, title=title)
    except BroadcastError as exc:
        raise click.ClickException(str(exc)) from exc
    when = "立即" if at is None else fmt_local(queued.due_at, rt.settings.tz, year=True)
    click.echo(f"已加入发送队列：{queued.label}，共 {queued.count} 人，{when}发送。批次 {queued.batch}")
    click.echo(f"查看进度：python bot.py deliveries --batch {queued.batch}")
    if leases.holder(rt.db(), "scheduler", rt.clock.now()) is None:
        click.echo("注意：现在没有运行中的调度器。请运行 python bot.py worker（或 serve）来发送。")


@click.command("deliveries")
@click.option("--batch", default=None, help="只看这个批次（broadcast 打印的批次号）")
@click.option("--send", is_flag=True, help="在本进程内立即发送所有到期消息后退出")
def deliveries_command(batch: str | None, send: bool) -> None:
    """Show delivery progress: sent, pending, failed, with the reasons."""
    from storage import deliveries

    rt = _runtime()
    db = rt.db()
    if send:
        from scheduler.dispatcher import Dispatcher
        from wechat.api import WeChatAPI

        dispatcher = Dispatcher(rt, WeChatAPI(rt.settings, rt.db, rt.clock.now))
        dispatcher.drain()
        words = {"sent": "已发送", "retried": "稍后重试", "failed": "失败", "unreachable": "无法送达",
                 "dropped": "已过时效", "cancelled": "已取消"}
        click.echo("本次发送：" + "，".join(f"{words[k]} {v}" for k, v in dispatcher.stats.items()))
    if batch:
        counts = deliveries.progress(db, batch)
        if not counts:
            raise click.ClickException(f"没有批次 {batch}")
        click.echo(f"批次 {batch}：" + _counts(counts))
    else:
        rows = deliveries.batches(db)
        if rows:
            click.echo("群发批次（最新在前）：")
            for b in rows:
                click.echo(f"  {b['batch']}  {fmt_local(from_db(b['due_at']), rt.settings.tz)}  "
                           f"共 {b['total']}：已发送 {b['sent']}，待发送 {b['pending']}，"
                           f"失败 {b['failed']}  {(b['text'] or '')[:30]}")
        kinds = deliveries.by_kind(db)
        if kinds:
            click.echo("按类型：")
            for k in kinds:
                click.echo(f"  {k['kind']:<10} 共 {k['total']}：已发送 {k['sent']}，待发送 "
                           f"{k['pending']}，失败 {k['failed']}，已取消 {k['cancelled']}")
        if not rows and not kinds:
            click.echo("发件箱是空的。")
    reports = deliveries.report_counts(db, batch)
    if reports:
        from scheduler.dispatcher import report_words

        click.echo("模板消息送达回执（TEMPLATESENDJOBFINISH）：")
        for r in reports:
            click.echo(f"  {report_words(r['report'])} {r['count']}")
    problems = deliveries.reasons(db, batch)
    if problems:
        click.echo("原因：")
        for p in problems:
            click.echo(f"  {_STATUS.get(p['status'], p['status'])} {p['count']}：{p['reason'] or '—'}")


_STATUS = {"sent": "已发送", "pending": "待发送", "sending": "发送中", "failed": "失败",
           "unreachable": "无法送达", "dropped": "已过时效", "cancelled": "已取消"}


def _counts(counts: dict[str, int]) -> str:
    total = sum(counts.values())
    order = ["sent", "pending", "sending", "failed", "unreachable", "dropped", "cancelled"]
    parts = [f"{_STATUS[s]} {counts[s]}" for s in order if counts.get(s)]
    return f"共 {total}：" + "，".join(parts)


@click.command()
def worker() -> None:
    """Run the scheduler (reminders, broadcasts, retries) until Ctrl-C; one leads, others wait.

    Run it next to a multi-worker web server (gunicorn), whose web workers never schedule.
    """
    from scheduler.service import SchedulerService

    rt = _runtime()
    if not rt.settings.wechat_appid:
        click.echo("注意：没有设置 WECHAT_APPID/WECHAT_SECRET，推送会失败并按规则重试。", err=True)
    service = SchedulerService(rt).start()
    state = "主调度器" if service.leader else "备用（另一个进程正在调度，它停止后本进程接替）"
    click.echo(f"worker 已启动：{service.owner}，{state}。Ctrl-C 停止。")
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    try:
        while not stop.wait(1.0):
            pass
    finally:
        service.stop()
        click.echo("worker 已停止。")
