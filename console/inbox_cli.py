"""`python bot.py inbox …`: the 人工 inbox for scripts (list, reply, close)."""
from __future__ import annotations

import click

from clock import fmt_local, from_db
from privacy import mask_phones_in
from storage import handoff as store

ACTOR = "命令行"


def _rt():
    from bot import _settings
    from runtime import Runtime

    return Runtime(_settings())


def _open_or_fail(rt, openid: str) -> dict:
    from scheduler import handoff as service

    service.expire(rt)
    conversation = store.open_for(rt.db(), openid)
    if conversation is None:
        raise click.ClickException(f"没有进行中的人工对话：{openid}")
    return conversation


def register(cli: click.Group) -> None:
    @cli.group(invoke_without_command=True)
    @click.pass_context
    def inbox(ctx: click.Context) -> None:
        """人工对话：不带子命令时列出进行中的对话（等待最久的在前）。"""
        if ctx.invoked_subcommand is not None:
            return
        from scheduler import handoff as service

        rt = _rt()
        service.expire(rt)
        rows = store.list_open(rt.db())
        if not rows:
            click.echo("没有等待人工回复的对话。")
            return
        now, tz = rt.clock.now(), rt.settings.tz
        for row in rows:
            allowed = service.allowance(rt, row["openid"])
            window = (f"客服消息剩 {allowed.messages_left} 条、{allowed.time_left}"
                      if allowed.custom_ok else "窗口外：只能用通知模板")
            who = row["name"] or "未登记"
            click.echo("\t".join([row["openid"], who, ("等待 " + service.waited(from_db(row["waiting_since"]), now)
                                   if row["waiting_since"] else "已回复"),
                                  "开始于 " + fmt_local(from_db(row["opened_at"]), tz), window,
                                  mask_phones_in(row["last_text"])[:40].replace("\n", " ")]))

    @inbox.command("reply")
    @click.argument("openid")
    @click.argument("text")
    @click.option("--template", is_flag=True,
                  help="用通知模板发送（客服消息窗口已过或条数已用完时）")
    def inbox_reply(openid: str, text: str, template: bool) -> None:
        """Answer one member: a customer-service message through the outbox."""
        from scheduler import handoff as service

        rt = _rt()
        conversation = _open_or_fail(rt, openid)
        try:
            delivery = service.reply(rt, conversation, text, ACTOR, template=template)
        except service.HandoffError as exc:
            hint = "（加 --template 用通知模板发送）" if "通知模板" in str(exc) and not template else ""
            raise click.ClickException(str(exc) + hint) from exc
        how = "通知模板" if template else "客服消息"
        click.echo(f"已加入发件箱（{how}，推送 {delivery}），由调度器发送；"
                   "python bot.py deliveries --send 可立即发送。")

    @inbox.command("close")
    @click.argument("openid")
    def inbox_close(openid: str) -> None:
        """End a member's conversation (the bot answers declines again)."""
        from scheduler import handoff as service

        rt = _rt()
        service.close(rt, _open_or_fail(rt, openid), ACTOR)
        click.echo("已结束人工对话。")
