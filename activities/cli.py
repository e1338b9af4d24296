"""Organisers' commands: activities, sign-up lists, volunteer records, member roles.

`register(cli)` adds them to `python bot.py`; each command's docstring is its --help.
Domain errors become click.ClickException (a Chinese sentence, no traceback).
"""
from __future__ import annotations

import contextlib
import getpass
import unicodedata
from datetime import datetime
from pathlib import Path
from typing import Iterator

import click

from activities import exports, service
from activities.service import ActivityError, STATUS_WORDS
from clock import TimeFormatError, fmt_iso_local, from_db, parse_local
from privacy import mask_openid
from settings import Settings, SettingsError
from storage import members

_LIST_HEAD = ("编号", "状态", "开始时间", "已确认/名额", "候补", "签到码")
_LIST_WIDTHS = (4, 6, 16, 11, 4, 6)
_TIME_HELP = "时间，按 BOT_TIMEZONE，格式 \"YYYY-MM-DD HH:MM\"（可带秒）"


@contextlib.contextmanager
def _runtime() -> Iterator:
    from runtime import Runtime

    try:
        settings = Settings.from_env()
    except SettingsError as exc:
        raise click.ClickException(str(exc)) from exc
    rt = Runtime(settings)
    try:
        yield rt
    except ActivityError as exc:
        raise click.ClickException(str(exc)) from exc
    finally:
        rt.executor.shutdown(wait=False)


def _pad(text: str, width: int) -> str:
    """Left-align by display width (a Chinese character takes two columns)."""
    used = sum(2 if unicodedata.east_asian_width(ch) in "WF" else 1 for ch in text)
    return text + " " * max(0, width - used)


def _time(value: str | None, rt, name: str) -> datetime | None:
    if value is None or not value.strip():
        return None
    try:
        return parse_local(value, rt.settings.tz)
    except TimeFormatError as exc:
        raise click.ClickException(f"{name}：{exc}") from exc


def _actor() -> str:
    try:
        return f"命令行:{getpass.getuser()}"
    except Exception:  # no login name in some containers
        return "命令行"


def _activity_options(fn):
    for option in reversed([
        click.option("--title", help="活动名称"),
        click.option("--start", help="开始" + _TIME_HELP),
        click.option("--end", help="结束" + _TIME_HELP),
        click.option("--deadline", help="报名截止" + _TIME_HELP + "；不填则到开始时为止"),
        click.option("--capacity", type=int, help="名额；不填表示不限"),
        click.option("--location", help="地点"),
        click.option("--group", help="共同体或组织方，如“青春志愿服务共同体”“局工会”"),
        click.option("--hours", type=float, help="签到后记入的志愿时长（小时）"),
        click.option("--description", help="活动说明和注意事项（集合时间、携带物品），成员能看到"),
        click.option("--checkout/--no-checkout", default=None,
                     help="开启签退：按签到到签退的实际时间记志愿时长"),
        click.option("--hours-step", type=float, default=None,
                     help="开启签退时实际时长向下取整的单位（0.1/0.25/0.5/1 小时，默认 0.5）"),
    ]):
        fn = option(fn)
    return fn


@click.group()
def activity() -> None:
    """Activities and volunteer events (times in BOT_TIMEZONE)."""


@activity.command("add")
@_activity_options
@click.option("--draft", is_flag=True, help="先存为草稿，不开放报名（之后用 activity open）")
def activity_add(title, start, end, deadline, capacity, location, group, hours, description,
                 checkout, hours_step, draft) -> None:
    """Create an activity, open for sign-up unless --draft; prints the new id."""
    if not title:
        raise click.ClickException("请用 --title 给出活动名称")
    with _runtime() as rt:
        now = rt.clock.now()
        activity_id = service.create_activity(
            rt.db(), title=title, now=now, start=_time(start, rt, "--start"),
            end=_time(end, rt, "--end"), deadline=_time(deadline, rt, "--deadline"),
            capacity=capacity, location=location, group=group, hours=hours or 0,
            description=description, status="draft" if draft else "open",
            created_by=_actor(), checkout=bool(checkout),
            hours_step=0.5 if hours_step is None else hours_step)
        a = service.get_activity(rt.db(), activity_id)
        click.echo(activity_id)
        click.echo(f"已创建活动 #{activity_id}「{a['title']}」（{STATUS_WORDS[a['status']]}）"
                   + (f"，签到码 {a['checkin_code']}" if a["checkin_code"] else ""), err=True)


@activity.command("update")
@click.argument("activity_id", type=int)
@_activity_options
@click.option("--unlimited", is_flag=True, help="改为不限名额")
def activity_update(activity_id, title, start, end, deadline, capacity, location, group, hours,
                    description, checkout, hours_step, unlimited) -> None:
    """Change an activity (e.g. give a default draft its dates and capacity).
    More places promote waitlisted members in order; they are told by a pushed message."""
    with _runtime() as rt:
        changes = {k: v for k, v in {
            "title": title, "start": _time(start, rt, "--start"), "end": _time(end, rt, "--end"),
            "deadline": _time(deadline, rt, "--deadline"), "capacity": capacity,
            "location": location, "group": group, "hours": hours,
            "description": description, "checkout": checkout,
            "hours_step": hours_step}.items() if v is not None}
        if unlimited:
            changes["capacity"] = None
        if not changes:
            raise click.ClickException("没有要修改的内容（见 --help）")
        promoted = service.update_activity(rt.db(), activity_id, changes, rt.clock.now(),
                                           rt.settings.tz)
        if promoted:
            rt.wake_dispatcher()
        a = service.get_activity(rt.db(), activity_id)
        click.echo(f"已修改活动 #{activity_id}「{a['title']}」"
                   + (f"，{len(promoted)} 位候补成员已递补并通知" if promoted else ""))


@activity.command("list")
@click.option("--status", type=click.Choice(service.STATUSES), multiple=True,
              help="只看这些状态（可多次给出）")
def activity_list(status) -> None:
    """List activities: id, status, start, places, waitlist, check-in code, title."""
    with _runtime() as rt:
        rows = service.list_activities(rt.db(), tuple(status) or None)
        if not rows:
            click.echo("没有活动。用 `activity add` 创建，或 `activity defaults` 载入默认项目草稿。")
            return
        click.echo("  ".join(_pad(h, w) for h, w in zip(_LIST_HEAD, _LIST_WIDTHS)) + "  名称（组织方）")
        for a in rows:
            cap = "不限" if a["capacity"] is None else str(a["capacity"])
            cells = [str(a["id"]), STATUS_WORDS[a["status"]],
                     fmt_iso_local(from_db(a["start_at"]), rt.settings.tz) or "待定",
                     f"{a['confirmed']}/{cap}", str(a["waitlisted"]), a["checkin_code"] or "—"]
            group = f"（{a['grp']}）" if a["grp"] else ""
            click.echo("  ".join(_pad(c, w) for c, w in zip(cells, _LIST_WIDTHS)) + "  "
                       + a["title"] + group)


@activity.command("show")
@click.argument("activity_id", type=int)
def activity_show(activity_id) -> None:
    """Show one activity in full."""
    with _runtime() as rt:
        a = service.get_activity(rt.db(), activity_id)
        tz = rt.settings.tz
        for label, value in [
            ("编号", a["id"]), ("名称", a["title"]), ("状态", STATUS_WORDS[a["status"]]),
            ("组织方", a["grp"] or "—"), ("时间", service.when(a, tz)),
            ("报名截止", fmt_iso_local(service.deadline_of(a), tz) or "—"),
            ("地点", service.where(a)),
            ("名额", "不限" if a["capacity"] is None else a["capacity"]),
            ("已确认", a["confirmed"]), ("候补", a["waitlisted"]),
            ("志愿时长", f"{service.fmt_hours(a['hours'])} 小时"
                         + (f"（签退开启：按实际时间，{service.fmt_hours(a['hours_step'])} 小时取整）"
                            if a["checkout"] else "")),
            ("签到码", a["checkin_code"] or "—"), ("说明", a["description"] or "—")]:
            click.echo(f"{label}：{value}")


@activity.command("open")
@click.argument("activity_id", type=int)
def activity_open(activity_id) -> None:
    """Open a draft (or a closed activity) for sign-up; gives it a check-in code."""
    with _runtime() as rt:
        a = service.open_activity(rt.db(), activity_id, rt.clock.now())
        click.echo(f"已开放报名：#{a['id']}「{a['title']}」，签到码 {a['checkin_code']}")


@activity.command("close")
@click.argument("activity_id", type=int)
def activity_close(activity_id) -> None:
    """Stop sign-ups; members already signed up keep their places."""
    with _runtime() as rt:
        a = service.close_activity(rt.db(), activity_id, rt.clock.now())
        click.echo(f"已截止报名：#{a['id']}「{a['title']}」（已确认 {a['confirmed']} 人，"
                   f"候补 {a['waitlisted']} 人）")


@activity.command("cancel")
@click.argument("activity_id", type=int)
@click.option("--reason", help="取消原因（会写进给成员的通知）")
def activity_cancel(activity_id, reason) -> None:
    """Cancel an activity; every member signed up is told by a pushed message."""
    with _runtime() as rt:
        told = service.cancel_activity(rt.db(), activity_id, rt.clock.now(), rt.settings.tz,
                                       reason=reason)
        rt.wake_dispatcher()
        a = service.get_activity(rt.db(), activity_id)
        click.echo(f"已取消活动 #{activity_id}「{a['title']}」，已给 {len(told)} 位报名成员排队发送通知")


@activity.command("defaults")
def activity_defaults() -> None:
    """Load the alliance's 2025 projects and the union's project list as draft activities."""
    from activities.defaults import DefaultsError, load_defaults

    with _runtime() as rt:
        try:
            added, existing = load_defaults(rt.db(), rt.clock.now())
        except DefaultsError as exc:
            raise click.ClickException(str(exc)) from exc
        click.echo(f"已载入 {added} 个草稿活动（{existing} 个之前已载入）。"
                   "用 `activity update ID --start … --capacity …` 补上时间和名额，再 `activity open ID`。")


@click.command("signups")
@click.argument("activity_id", type=int)
@click.option("--format", "fmt", type=click.Choice(exports.FORMATS), default="csv",
              show_default=True, help="导出格式")
@click.option("--reveal", is_flag=True, help="显示完整手机号（默认打码）")
@click.option("--output", type=click.Path(dir_okay=False, path_type=Path),
              help="写入文件；CSV 不填则打印，XLSX 不填则写 signups-ID.xlsx")
def signups(activity_id, fmt, reveal, output) -> None:
    """Export an activity's sign-up list (name, unit, phone, status, times, check-in, hours)."""
    with _runtime() as rt:
        a = service.get_activity(rt.db(), activity_id)
        header, rows = service.export_rows(rt.db(), activity_id, rt.settings.tz, reveal=reveal)
        if reveal:
            click.echo("注意：名单含完整手机号，请妥善保管，用后删除。", err=True)
        if fmt == "csv":
            text = exports.to_csv(header, rows)
            if output is None:
                click.echo(text, nl=False)
                return
            output.parent.mkdir(parents=True, exist_ok=True)
            output.write_text(text, encoding="utf-8-sig", newline="")
        else:
            output = output or Path(f"signups-{activity_id}.xlsx")
            caption = (f"{a['title']}（{service.when(a, rt.settings.tz)}，{service.where(a)}）"
                       f" 已确认 {a['confirmed']} 人，候补 {a['waitlisted']} 人")
            exports.to_xlsx(header, rows, output, caption=caption)
        click.echo(f"已导出 {len(rows)} 条报名记录到 {output}", err=True)


@click.command("volunteer-record")
@click.argument("openid")
@click.option("--pdf", "pdf", type=click.Path(dir_okay=False, path_type=Path),
              help="出具 PDF《志愿服务记录证明》（带编号，记入操作日志）写入这个文件")
def volunteer_record(openid, pdf) -> None:
    """Print a member's volunteer service record: who, activity, organiser, date, hours;
    with --pdf, issue the numbered certificate as a PDF file."""
    with _runtime() as rt:
        tz = rt.settings.tz
        if pdf is not None:
            from activities import certificate

            try:
                cert = certificate.issue(rt.db(), openid, rt.clock.now(), tz, _actor())
            except service.SignupNotFound:
                raise click.ClickException("没有这个成员（需要先给公众号发过消息）") from None
            pdf.parent.mkdir(parents=True, exist_ok=True)
            pdf.write_bytes(cert.pdf)
            click.echo(f"已出具志愿服务记录证明 {cert.number}（{cert.activities} 次活动，"
                       f"{service.fmt_hours(cert.total_hours)} 小时），写入 {pdf}；已记入操作日志")
            return
        try:
            record = service.volunteer_record(rt.db(), openid)
        except service.SignupNotFound:
            raise click.ClickException("没有这个成员（需要先给公众号发过消息）") from None
        m = record["member"]
        click.echo("志愿服务记录")
        click.echo(f"志愿者：{m['name'] or '（未登记姓名）'}    单位：{m['unit'] or '（未登记单位）'}")
        click.echo(f"成员标识：{mask_openid(openid)}    出具时间：{fmt_iso_local(rt.clock.now(), tz)}")
        click.echo("")
        if not record["records"]:
            click.echo("暂无志愿服务记录。")
            return
        click.echo("序号  服务日期    活动名称 / 组织者 / 时长（小时） / 签到时间 / 报名记录编号")
        for n, r in enumerate(record["records"], 1):
            day = fmt_iso_local(from_db(r["start_at"]), tz)[:10] or "—"
            click.echo(f"{n:<5} {day}  {r['title']} / {r['organiser'] or '—'} / "
                       f"{service.fmt_hours(r['credited_hours'])} / "
                       f"{fmt_iso_local(from_db(r['checked_in_at']), tz) or '未签到'} / "
                       f"#{r['signup_id']}")
            for c in r["corrections"]:
                click.echo(f"      更正：{fmt_iso_local(from_db(c['at']), tz)} 由 {c['actor']} 将 "
                           f"{service.fmt_hours(c['old_hours'])} 小时改为 "
                           f"{service.fmt_hours(c['new_hours'])} 小时，原因：{c['reason']}")
        click.echo("")
        click.echo(f"合计：{record['count']} 次活动，累计志愿服务时长 "
                   f"{service.fmt_hours(record['total_hours'])} 小时。")
        click.echo("本记录依据《志愿服务记录与证明出具办法（试行）》，按签到记录如实记载；"
                   "更正均记录更正人、时间和原因。")


@click.command("volunteer-correct")
@click.argument("signup_id", type=int)
@click.option("--hours", type=float, required=True, help="更正后的志愿时长（小时）")
@click.option("--reason", required=True, help="更正原因（必填，会留痕）")
@click.option("--actor", default=None, help="更正人（默认：命令行:当前系统用户）")
def volunteer_correct(signup_id, hours, reason, actor) -> None:
    """Correct the hours of one sign-up; the old value, actor and reason are logged."""
    with _runtime() as rt:
        before = service.get_signup(rt.db(), signup_id)
        signup = service.correct_hours(rt.db(), signup_id, hours, reason, actor or _actor(),
                                       rt.clock.now())
        old = service.fmt_hours(before["hours"]) if before and before["hours"] is not None else "未记"
        click.echo(f"已更正报名记录 #{signup_id}：{old} → {service.fmt_hours(signup['hours'])} 小时"
                   f"（原因：{reason.strip()}）")


@click.group("member")
def member() -> None:
    """Members of the account."""


@member.command("role")
@click.argument("openid")
@click.argument("role", type=click.Choice(members.ROLES))
def member_role(openid, role) -> None:
    """Make a member an organiser, or a plain member again."""
    with _runtime() as rt:
        try:
            members.set_role(rt.db(), openid, role)
        except members.NotFound:
            raise click.ClickException("没有这个成员（需要先给公众号发过消息）") from None
        click.echo(f"{mask_openid(openid)} 现在是 {'组织者' if role == 'organiser' else '普通成员'}")


def register(cli: click.Group) -> None:
    """Add the commands to `python bot.py` (a `member` group that exists already gets `role`)."""
    for command in (activity, signups, volunteer_record, volunteer_correct):
        cli.add_command(command)
    existing = cli.commands.get("member")
    if isinstance(existing, click.Group) and existing is not member:
        existing.add_command(member_role)
    else:
        cli.add_command(member)
