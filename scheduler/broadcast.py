"""Broadcasts: a notice queued in the outbox for an audience, one row per member, one batch id.

Audiences: `all` (every follower), `group:<共同体>` (members whose unit belongs to one of the
共同体's lead or member units in alliance.yaml), `activity:<id>` (its live sign-ups).
Members who unfollowed the account are left out; the dispatcher sends the rows.
"""
from __future__ import annotations

import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING

import yaml

from clock import TimeFormatError, fmt_local, parse_local, to_db
from knowledge.calendar import DATA_DIR
from storage import deliveries, members
from storage import reminders as store

if TYPE_CHECKING:
    from runtime import Runtime

MAX_TEXT = 600  # characters; a customer-service text is capped at 2048 bytes
PAST_GRACE = timedelta(minutes=1)
AUDIENCE_HELP = "发送范围应为 all、group:共同体名称 或 activity:活动编号"


class BroadcastError(ValueError):
    """A broadcast that cannot be queued; str() is the Chinese reason."""


@dataclass
class Audience:
    openids: list[str]
    label: str  # how organisers read it: "全部成员", "「青春法治专研」共同体", …


@dataclass
class Queued:
    batch: str
    count: int
    due_at: datetime
    label: str


def groups(data_dir: str | Path = DATA_DIR) -> list[dict]:
    """The 共同体 of alliance.yaml: key, name, aliases and the unit names that belong to it
    (full names without the trailing 团组织, and the short names members actually type)."""
    with open(Path(data_dir) / "alliance.yaml", encoding="utf-8") as fh:
        data = yaml.safe_load(fh) or {}
    out = []
    for g in data.get("groups") or []:
        units = []
        for unit in [g.get("lead") or {}, *(g.get("members") or [])]:
            for name in (unit.get("unit"), unit.get("short")):
                if name:
                    name = name.removesuffix("团组织")
                    if name not in units:
                        units.append(name)
        out.append({"key": g.get("key"), "name": g.get("name"),
                    "aliases": list(g.get("aliases") or []), "units": units})
    return out


def find_group(name: str, data_dir: str | Path = DATA_DIR) -> dict:
    """The 共同体 called `name` (its name, an alias or its key). Raises BroadcastError."""
    wanted = "".join(name.split()).lower()
    for group in groups(data_dir):
        if wanted in {n.lower() for n in [group["name"], group["key"], *group["aliases"]]}:
            return group
    names = "、".join(g["name"] for g in groups(data_dir))
    raise BroadcastError(f"没有叫“{name}”的共同体。可选：{names}")


def audience(rt: "Runtime", to: str = "all", scope=None) -> Audience:
    """Who a broadcast to `to` reaches now; a console account's scope (alliance.scope) keeps
    only the members inside it. Raises BroadcastError for an unknown audience."""
    who = _audience(rt, to)
    if scope is None or not scope.limited:
        return who
    kept = {r["openid"] for r in scope.members(members.units(rt.db(), who.openids))}
    return Audience([o for o in who.openids if o in kept], f"{who.label}（仅{scope.label}）")


def _audience(rt: "Runtime", to: str) -> Audience:
    db = rt.db()
    to = (to or "all").strip()
    kind, _, value = to.partition(":")
    kind, value = kind.strip().lower(), value.strip()
    if kind in ("all", "全部") and not value:
        return Audience(members.subscribed_openids(db), "全部成员")
    if kind in ("group", "共同体") and value:
        group = find_group(value)
        return Audience(members.in_group(db, group["units"]), f"「{group['name']}」共同体")
    if kind in ("activity", "活动") and value:
        try:
            activity_id = int(value)
        except ValueError:
            raise BroadcastError(f"活动编号应是数字：{value}") from None
        title = store.activity_title(db, activity_id)
        if title is None:
            raise BroadcastError(f"没有编号为 {activity_id} 的活动")
        return Audience(store.activity_audience(db, activity_id), f"活动「{title}」的报名成员")
    raise BroadcastError(f"看不懂发送范围“{to}”。{AUDIENCE_HELP}")


def new_batch(rt: "Runtime") -> str:
    """A batch id organisers can type: b20261121-1005-3fa2."""
    here = rt.clock.now().astimezone(rt.settings.tz)
    return f"b{here:%Y%m%d-%H%M}-{secrets.token_hex(2)}"


def check_text(text: str) -> str:
    """The notice's text, trimmed. Raises BroadcastError when empty or too long."""
    text = (text or "").strip()
    if not text:
        raise BroadcastError("通知内容不能为空")
    if len(text) > MAX_TEXT:
        raise BroadcastError(f"通知内容过长：{len(text)} 字，最多 {MAX_TEXT} 字")
    return text


def due_time(rt: "Runtime", at: str | datetime | None) -> datetime:
    """When to send: now, or `at` ("YYYY-MM-DD HH:MM" in BOT_TIMEZONE). Raises BroadcastError."""
    now = rt.clock.now()
    if at is None or at == "":
        return now
    if isinstance(at, str):
        try:
            at = parse_local(at, rt.settings.tz)
        except TimeFormatError:
            raise BroadcastError(f"发送时间格式应为 YYYY-MM-DD HH:MM：{at}") from None
    if at < now - PAST_GRACE:
        raise BroadcastError(f"发送时间 {fmt_local(at, rt.settings.tz, year=True)} 已经过去")
    return max(at, now)


def queue(rt: "Runtime", text: str, to: str = "all", at: str | datetime | None = None, *,
          title: str = "通知", sender: str = "诚城青年助手", batch: str | None = None,
          scope=None) -> Queued:
    """Queue a notice for everyone in the audience; returns the batch and how many rows.

    Queuing the same batch again adds nobody twice (dedupe key notice:<batch>:<openid>).
    Raises BroadcastError for empty or long text, a past time, an unknown or empty audience.
    """
    text = check_text(text)
    due = due_time(rt, at)
    who = audience(rt, to, scope)
    if not who.openids:
        raise BroadcastError(f"{who.label}中没有关注公众号的成员，通知未发送")
    batch = batch or new_batch(rt)
    now = rt.clock.now()
    when = fmt_local(due, rt.settings.tz)
    data = {"keyword1": text[:20], "keyword2": when, "keyword3": sender[:20],
            "time": to_db(due)}
    rows = [{"dedupe_key": f"notice:{batch}:{openid}", "openid": openid, "kind": "notice",
             "title": title, "text": f"【{title}】{text}", "data": data, "due_at": due,
             "batch": batch} for openid in who.openids]
    deliveries.enqueue_many(rt.db(), rows, now)
    if due <= now:
        rt.wake_dispatcher()
    return Queued(batch, len(rows), due, who.label)
