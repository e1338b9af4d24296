"""Scan to check in: the activity's WeChat parametric QR code (temporary, QR_STR_SCENE, scene
`checkin:<code>`), made with /cgi-bin/qrcode/create and shown from showqrcode.

The code lives as long as the check-in window (WeChat allows 30 days at most; a longer wait
gets a fresh code when the page is next opened). An account that cannot make QR codes
(unverified: 48001) is remembered, so the page says so and shows the typed code instead.
"""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlite_utils import Database

from activities.service import checkin_window, normalize_code
from clock import from_db
from storage import activities as store
from wechat.api import WeChatAPI, WeChatAPIError

SCENE_PREFIX = "checkin:"
MAX_EXPIRE = timedelta(days=30)  # WeChat's limit for temporary QR codes
RENEW_BEFORE = timedelta(minutes=5)  # make a new code when the old one is this close to expiry
RETRY_AFTER_ERROR = timedelta(minutes=10)
UNVERIFIED_ERRORS = {48001}  # api unauthorized: the account may not make QR codes
MAX_CODE = 16


@dataclass
class CheckinQR:
    """What the activity page shows: a ticket to display, or why there is none."""

    ticket: str | None
    expires_at: datetime | None
    error: str | None = None
    unverified: bool = False


def scene(code: str) -> str:
    return SCENE_PREFIX + code


def code_from_scene(event_key: str | None) -> str | None:
    """The check-in code in a SCAN / qrscene_ EventKey, or None when it is not ours."""
    key = (event_key or "").strip()
    if key.startswith("qrscene_"):
        key = key[len("qrscene_"):]
    if not key.startswith(SCENE_PREFIX):
        return None
    return normalize_code(key[len(SCENE_PREFIX):])[:MAX_CODE]


def checkin_qr(db: Database, api: WeChatAPI, activity: dict, now: datetime) -> CheckinQR | None:
    """The activity's current QR code, made (or renewed) when needed; None when the activity
    has no check-in to scan for (cancelled, no code, no start, window over)."""
    code = activity.get("checkin_code")
    if activity["status"] == "cancelled" or not code or not activity.get("start_at"):
        return None
    closes = checkin_window(activity)[1]
    if now >= closes:
        return None
    row = store.get_qr(db, activity["id"])
    if row and row["code"] == code:
        expires = from_db(row["expires_at"])
        if row["ticket"] and expires - now > RENEW_BEFORE:
            return CheckinQR(row["ticket"], expires)
        if row["error"] and expires > now:
            return CheckinQR(None, None, row["error"], bool(row["unverified"]))
    lifetime = min(closes - now, MAX_EXPIRE)
    try:
        answer = api.create_qrcode(scene(code), max(60, int(lifetime.total_seconds())))
        ticket = answer["ticket"]
        expires = now + timedelta(seconds=int(answer.get("expire_seconds") or 60))
    except (WeChatAPIError, KeyError, TypeError, ValueError) as exc:
        unverified = isinstance(exc, WeChatAPIError) and exc.errcode in UNVERIFIED_ERRORS
        reason = exc.reason if isinstance(exc, WeChatAPIError) else "微信的回答无法读取"
        store.put_qr(db, activity["id"], code=code, ticket=None, url=None,
                     expires_at=now + RETRY_AFTER_ERROR, error=reason, unverified=unverified,
                     now=now)
        return CheckinQR(None, None, reason, unverified)
    store.put_qr(db, activity["id"], code=code, ticket=ticket, url=answer.get("url"),
                 expires_at=expires, error=None, unverified=False, now=now)
    return CheckinQR(ticket, expires)
