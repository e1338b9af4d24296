"""Every setting in one place, read from the environment once, each with a default.

The README lists them; nothing else in the code reads os.environ.
"""
from __future__ import annotations

import os
import re
from dataclasses import dataclass, field, replace
from datetime import datetime, time, timedelta
from functools import cached_property
from pathlib import Path
from zoneinfo import ZoneInfo

DEFAULT_API_BASE = "https://api.weixin.qq.com"
PROJECT_DIR = Path(__file__).resolve().parent
DEFAULT_DATA_DIR = PROJECT_DIR / "data"  # not ./data of wherever a command is run from
DEFAULT_QR_BASE = "https://mp.weixin.qq.com"  # showqrcode lives on WeChat's other host
_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([smhd])\s*$")
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}


class SettingsError(ValueError):
    """A setting has a value the bot cannot use."""


def parse_duration(text: str) -> timedelta:
    """'90s', '15m', '2h', '1d' -> timedelta. Raises SettingsError on anything else."""
    match = _DURATION.match(text or "")
    if not match:
        raise SettingsError(f"不是有效的时长：{text!r}（例如 24h、2h、30m、1d）")
    return timedelta(seconds=float(match.group(1)) * _UNITS[match.group(2)])


def parse_offsets(text: str) -> tuple[timedelta, ...]:
    """'24h,2h' -> (24h, 2h), largest first; duplicates dropped."""
    offsets = {parse_duration(part) for part in text.split(",") if part.strip()}
    return tuple(sorted(offsets, reverse=True))


WEEKDAY_NAMES = "一二三四五六日"


def parse_work_hours(text: str) -> tuple[frozenset[int], time, time]:
    """'1-5 09:00-17:30' -> ({1..5}, 09:00, 17:30): ISO weekdays (1 = Monday) and local hours
    when staff answer members. Raises SettingsError on anything else."""
    match = re.match(r"^\s*([1-7](?:\s*[-,]\s*[1-7])*)\s+(\d{1,2}):(\d\d)\s*-\s*(\d{1,2}):(\d\d)\s*$",
                     text or "")
    if not match:
        raise SettingsError(f"BOT_HANDOFF_HOURS 格式应为“1-5 09:00-17:30”（星期 1–7 与时间）：{text!r}")
    days: set[int] = set()
    for part in match.group(1).replace(" ", "").split(","):
        first, _, last = part.partition("-")
        lo, hi = int(first), int(last or first)
        if lo > hi:
            raise SettingsError(f"BOT_HANDOFF_HOURS 星期范围有误：{part!r}")
        days.update(range(lo, hi + 1))
    try:
        start = time(int(match.group(2)), int(match.group(3)))
        end = time(int(match.group(4)), int(match.group(5)))
    except ValueError as exc:
        raise SettingsError(f"BOT_HANDOFF_HOURS 时间无效：{text!r}") from exc
    if start >= end:
        raise SettingsError(f"BOT_HANDOFF_HOURS 结束时间应晚于开始时间：{text!r}")
    return frozenset(days), start, end


def _bool(text: str) -> bool:
    return text.strip().lower() in {"1", "true", "yes", "on"}


@dataclass(frozen=True)
class Settings:
    """The bot's configuration. `Settings.from_env()` reads it; tests build one directly."""

    # WeChat account (公众号 → 设置与开发 → 基本配置)
    wechat_token: str = ""  # WECHAT_TOKEN; empty: a development token is generated and stored
    wechat_aes_key: str = ""  # WECHAT_AES_KEY (EncodingAESKey, 43 chars) for safe mode
    wechat_appid: str = ""  # WECHAT_APPID
    wechat_secret: str = ""  # WECHAT_SECRET
    wechat_api_base: str = DEFAULT_API_BASE  # WECHAT_API_BASE
    wechat_stable_token: bool = True  # WECHAT_STABLE_TOKEN: use /cgi-bin/stable_token
    wechat_template_reminder: str = ""  # WECHAT_TEMPLATE_REMINDER: template id for reminders
    wechat_template_notice: str = ""  # WECHAT_TEMPLATE_NOTICE: template id for notices
    wechat_subscribe_template: str = ""  # WECHAT_SUBSCRIBE_TEMPLATE: 订阅通知 template id
    wechat_cs_window_hours: float = 48  # WECHAT_CS_WINDOW_HOURS
    wechat_cs_max_messages: int = 5  # WECHAT_CS_MAX_MESSAGES per window
    wechat_api_timeout: float = 5.0  # WECHAT_API_TIMEOUT seconds per outbound call
    wechat_qr_base: str = ""  # WECHAT_QR_BASE: showqrcode host; empty: WeChat's, or the API base
    wechat_timestamp_tolerance: int = 300  # WECHAT_TIMESTAMP_TOLERANCE: ± seconds a URL lives
    wechat_compat_mode: bool = False  # WECHAT_COMPAT_MODE: 兼容模式, plaintext POSTs beside AES

    # The bot
    data_dir: Path = DEFAULT_DATA_DIR  # BOT_DATA_DIR: the SQLite file lives here
    timezone: str = "Asia/Shanghai"  # BOT_TIMEZONE: every time members and organisers see
    reply_budget: float = 4.0  # BOT_REPLY_BUDGET seconds before "正在处理" (WeChat waits 5 s)
    max_body_bytes: int = 64 * 1024  # BOT_MAX_BODY
    reply_max_bytes: int = 2000  # BOT_REPLY_MAX_BYTES: WeChat's text reply limit is 2048
    dialog_timeout_minutes: float = 10  # BOT_DIALOG_TIMEOUT
    reminder_offsets: tuple[timedelta, ...] = field(
        default_factory=lambda: parse_offsets("24h,2h"))  # BOT_REMINDER_OFFSETS
    send_rate: float = 20.0  # BOT_SEND_RATE outbound push calls per second
    send_max_attempts: int = 6  # BOT_SEND_MAX_ATTEMPTS before a delivery is failed
    confidence_threshold: float = 0.42  # BOT_CONFIDENCE: below it the bot declines (bench/qa.py calibrates)
    answer_cache: int = 1024  # BOT_ANSWER_CACHE: engine answers kept per knowledge build (0: off)
    secret_key: str = ""  # BOT_SECRET_KEY for console sessions; generated and stored if empty
    console_idle_minutes: float = 120  # BOT_CONSOLE_IDLE: console sessions end after this idle time
    checkin_max_wrong: int = 5  # BOT_CHECKIN_MAX_WRONG wrong check-in codes per member per activity
    checkin_wrong_window_minutes: float = 60  # BOT_CHECKIN_WRONG_WINDOW: ... within this many minutes
    secure_cookie: bool = False  # BOT_SECURE_COOKIE: console cookies only over HTTPS
    simulator: bool | None = None  # BOT_SIMULATOR: /simulator page; default on without an AppID
    local_fake_wechat: bool = False  # set by serve/chat when pushes go to the in-process fake API
    fake_now: str = ""  # BOT_FAKE_NOW "YYYY-MM-DD HH:MM" (demos and tests only)
    log_level: str = "INFO"  # BOT_LOG_LEVEL
    tappable_suggestions: bool = False  # BOT_TAPPABLE_SUGGESTIONS: weixin://bizmsgmenu links
    processes: int = 1  # BOT_PROCESSES: `serve` processes on one port (up to the CPU cores)
    connection_limit: int = 1000  # BOT_CONNECTION_LIMIT: open connections waitress accepts
    channel_timeout: float = 15  # BOT_CHANNEL_TIMEOUT: seconds an idle connection stays open
    handoff_hours: str = "1-5 09:00-17:30"  # BOT_HANDOFF_HOURS: when staff answer 人工 requests
    handoff_timeout_hours: float = 24  # BOT_HANDOFF_TIMEOUT: silence that ends a 人工 conversation

    @classmethod
    def from_env(cls, environ: dict[str, str] | None = None, **overrides) -> "Settings":
        """Read every setting from the environment; raises SettingsError on a bad value."""
        env = os.environ if environ is None else environ
        values: dict = {}
        text = {
            "wechat_token": "WECHAT_TOKEN", "wechat_aes_key": "WECHAT_AES_KEY",
            "wechat_appid": "WECHAT_APPID", "wechat_secret": "WECHAT_SECRET",
            "wechat_api_base": "WECHAT_API_BASE", "wechat_qr_base": "WECHAT_QR_BASE",
            "wechat_template_reminder": "WECHAT_TEMPLATE_REMINDER",
            "wechat_template_notice": "WECHAT_TEMPLATE_NOTICE",
            "wechat_subscribe_template": "WECHAT_SUBSCRIBE_TEMPLATE",
            "timezone": "BOT_TIMEZONE", "secret_key": "BOT_SECRET_KEY",
            "fake_now": "BOT_FAKE_NOW", "log_level": "BOT_LOG_LEVEL",
            "handoff_hours": "BOT_HANDOFF_HOURS",
        }
        numbers = {
            "wechat_cs_window_hours": ("WECHAT_CS_WINDOW_HOURS", float),
            "wechat_cs_max_messages": ("WECHAT_CS_MAX_MESSAGES", int),
            "wechat_api_timeout": ("WECHAT_API_TIMEOUT", float),
            "wechat_timestamp_tolerance": ("WECHAT_TIMESTAMP_TOLERANCE", int),
            "reply_budget": ("BOT_REPLY_BUDGET", float),
            "max_body_bytes": ("BOT_MAX_BODY", int),
            "reply_max_bytes": ("BOT_REPLY_MAX_BYTES", int),
            "dialog_timeout_minutes": ("BOT_DIALOG_TIMEOUT", float),
            "send_rate": ("BOT_SEND_RATE", float),
            "send_max_attempts": ("BOT_SEND_MAX_ATTEMPTS", int),
            "confidence_threshold": ("BOT_CONFIDENCE", float),
            "answer_cache": ("BOT_ANSWER_CACHE", int),
            "console_idle_minutes": ("BOT_CONSOLE_IDLE", float),
            "checkin_max_wrong": ("BOT_CHECKIN_MAX_WRONG", int),
            "checkin_wrong_window_minutes": ("BOT_CHECKIN_WRONG_WINDOW", float),
            "processes": ("BOT_PROCESSES", int),
            "connection_limit": ("BOT_CONNECTION_LIMIT", int),
            "channel_timeout": ("BOT_CHANNEL_TIMEOUT", float),
            "handoff_timeout_hours": ("BOT_HANDOFF_TIMEOUT", float),
        }
        for name, key in text.items():
            if key in env:
                values[name] = env[key].strip()
        for name, (key, kind) in numbers.items():
            if env.get(key, "").strip():
                try:
                    values[name] = kind(env[key])
                except ValueError as exc:
                    raise SettingsError(f"{key} 不是数字：{env[key]!r}") from exc
        if env.get("BOT_DATA_DIR", "").strip():
            values["data_dir"] = Path(env["BOT_DATA_DIR"].strip()).expanduser().absolute()
        if env.get("BOT_REMINDER_OFFSETS", "").strip():
            values["reminder_offsets"] = parse_offsets(env["BOT_REMINDER_OFFSETS"])
        if env.get("WECHAT_STABLE_TOKEN", "").strip():
            values["wechat_stable_token"] = _bool(env["WECHAT_STABLE_TOKEN"])
        if env.get("WECHAT_COMPAT_MODE", "").strip():
            values["wechat_compat_mode"] = _bool(env["WECHAT_COMPAT_MODE"])
        if env.get("BOT_SECURE_COOKIE", "").strip():
            values["secure_cookie"] = _bool(env["BOT_SECURE_COOKIE"])
        if env.get("BOT_SIMULATOR", "").strip():
            values["simulator"] = _bool(env["BOT_SIMULATOR"])
        if env.get("BOT_TAPPABLE_SUGGESTIONS", "").strip():
            values["tappable_suggestions"] = _bool(env["BOT_TAPPABLE_SUGGESTIONS"])
        values.update(overrides)
        return cls(**values).validated()

    def validated(self) -> "Settings":
        """Check values that would otherwise fail later and far from their cause."""
        try:
            ZoneInfo(self.timezone)
        except Exception as exc:
            raise SettingsError(f"BOT_TIMEZONE 无效：{self.timezone!r}") from exc
        if self.wechat_aes_key and len(self.wechat_aes_key) != 43:
            raise SettingsError("WECHAT_AES_KEY 必须是 43 个字符（公众号后台的 EncodingAESKey）")
        if self.wechat_timestamp_tolerance < 1:
            raise SettingsError("WECHAT_TIMESTAMP_TOLERANCE 必须是正整数（秒）")
        if not 1 <= self.processes <= 64:
            raise SettingsError("BOT_PROCESSES 应为 1–64 的整数（一般设为 CPU 核数）")
        if self.connection_limit < 1 or self.channel_timeout <= 0:
            raise SettingsError("BOT_CONNECTION_LIMIT 与 BOT_CHANNEL_TIMEOUT 必须大于 0")
        if self.fake_now:
            self.fixed_now()
        if self.checkin_max_wrong < 1 or self.checkin_wrong_window_minutes <= 0:
            raise SettingsError("BOT_CHECKIN_MAX_WRONG 和 BOT_CHECKIN_WRONG_WINDOW 必须大于 0")
        parse_work_hours(self.handoff_hours)
        if self.handoff_timeout_hours <= 0:
            raise SettingsError("BOT_HANDOFF_TIMEOUT 必须大于 0（小时）")
        return replace(self, wechat_api_base=self.wechat_api_base.rstrip("/"),
                       data_dir=Path(self.data_dir))

    @property
    def tz(self) -> ZoneInfo:
        return ZoneInfo(self.timezone)

    @property
    def qr_base(self) -> str:
        """Where QR images are shown: WECHAT_QR_BASE, else WeChat's own host for the official
        API, else the API base (the local fake serves both)."""
        if self.wechat_qr_base:
            return self.wechat_qr_base.rstrip("/")
        return DEFAULT_QR_BASE if self.wechat_api_base == DEFAULT_API_BASE \
            else self.wechat_api_base

    @property
    def work_hours(self) -> tuple[frozenset[int], time, time]:
        return parse_work_hours(self.handoff_hours)

    @cached_property
    def db_path(self) -> Path:
        """BOT_DATA_DIR/bot.db (worked out once: every database access asks for it)."""
        return Path(self.data_dir) / "bot.db"

    @property
    def simulator_enabled(self) -> bool:
        if self.simulator is None:
            return not self.wechat_appid or self.local_fake_wechat
        return self.simulator

    @property
    def simulator_public(self) -> bool:
        """Only an explicit BOT_SIMULATOR=1 opens /simulator to clients other than loopback."""
        return self.simulator is True

    def fixed_now(self) -> datetime | None:
        """BOT_FAKE_NOW as an aware datetime, or None when the real clock is used."""
        if not self.fake_now:
            return None
        try:
            local = datetime.strptime(self.fake_now, "%Y-%m-%d %H:%M")
        except ValueError as exc:
            raise SettingsError("BOT_FAKE_NOW 格式应为 YYYY-MM-DD HH:MM") from exc
        return local.replace(tzinfo=self.tz)
