"""Activities and sign-ups as domain operations, shared by the chat, the CLI and the console.

Every operation that reads and then writes (sign-up, cancel, promotion, check-in) is one
`BEGIN IMMEDIATE` transaction: the write lock is taken before the count is read, so capacity
holds and the waitlist stays first come, first served across threads and processes.
"""
from __future__ import annotations

import math
import re
import secrets
import sqlite3
import time
import unicodedata
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

from rapidfuzz import fuzz
from rapidfuzz.distance import LCSseq
from sqlite_utils import Database

from clock import fmt_iso_local, fmt_local, from_db, to_db
from privacy import mask_phone
from storage import activities as store
from storage import deliveries, members
from storage.db import immediate

# TEST-ONLY switch for the negative control in tests/test_signup_concurrency.py. With False,
# sign_up reads the count in one transaction and writes in another (the classic race), which
# must oversell. Never set it to False outside that test.
GUARD = True
UNGUARDED_PAUSE = 0.03  # seconds between the read and the write when GUARD is False

STATUSES = ("draft", "open", "closed", "cancelled")
STATUS_WORDS = {"draft": "草稿", "open": "报名中", "closed": "已截止", "cancelled": "已取消"}
SIGNUP_WORDS = {"confirmed": "已确认", "waitlisted": "候补", "cancelled": "已取消"}
CHECKIN_OPENS_BEFORE = timedelta(hours=1)
CHECKIN_CLOSES_AFTER = timedelta(hours=2)
ASSUMED_LENGTH = timedelta(hours=4)  # an activity without an end time, for the check-in window
SEARCH_BACK = timedelta(days=30)
MATCH_THRESHOLD = 65
MATCH_SPREAD = 10
MAX_TITLE = 60
MAX_HOURS = 100
HOURS_STEPS = (0.1, 0.25, 0.5, 1.0)  # how real attendance is rounded (down) when 签退 is on
WRONG_CODE = "签到码不正确，请核对活动现场公布的签到码（只能签到你已报名的活动）。"
NO_SIGNUP_BUCKET = 0  # wrong codes of a member with no sign-up that could be checked into
MAX_CAPACITY = 100_000  # more places than members is a typo (and SQLite ints end at 2**63)
_PUNCT = re.compile(r"[\s\"'“”‘’「」『』《》〈〉【】()（）\[\]·•,，.。、:：;；!！?？\-—_/]+")


def normalize_code(code: str) -> str:
    """A check-in code as typed: full-width digits and letters folded, case ignored."""
    return unicodedata.normalize("NFKC", code or "").strip().upper()


def match_score(keyword: str, title: str) -> float:
    """0-100: how well a typed keyword names a title (substring 100; typos and gaps less)."""
    kw, text = _squash(keyword), _squash(title)
    if not kw or not text:
        return 0.0
    if kw == text:
        return 101.0
    if kw in text:
        return 100.0
    if len(kw) == 1:
        return 0.0
    in_order = LCSseq.similarity(kw, text) / len(kw) * 100 * 0.85
    return max(fuzz.partial_ratio(kw, text), in_order)


def start_of(activity: dict) -> datetime | None:
    return from_db(activity.get("start_at"))


def deadline_of(activity: dict) -> datetime | None:
    return from_db(activity.get("deadline_at")) or start_of(activity)


def places_left(activity: dict) -> int | None:
    """None: unlimited."""
    if activity.get("capacity") is None:
        return None
    return max(0, activity["capacity"] - (activity.get("confirmed") or 0))


def fmt_hours(hours: float | None) -> str:
    value = float(hours or 0)
    return f"{value:g}"


def when(activity: dict, tz: ZoneInfo) -> str:
    """'11月28日(周六) 09:00–11:30' as members read it."""
    start, end = start_of(activity), from_db(activity.get("end_at"))
    if start is None:
        return "时间待定"
    text = fmt_local(start, tz)
    if end:
        same_day = end.astimezone(tz).date() == start.astimezone(tz).date()
        text += "–" + (end.astimezone(tz).strftime("%H:%M") if same_day else fmt_local(end, tz))
    return text


def where(activity: dict) -> str:
    return activity.get("location") or "待通知"


def _squash(text: str) -> str:
    return _PUNCT.sub("", unicodedata.normalize("NFKC", text or "").lower())


class ActivityError(Exception):
    """A domain error; str(exc) is the Chinese sentence for the member or organiser."""


class InvalidActivity(ActivityError):
    """An organiser's input for an activity cannot be used."""


class ActivityNotFound(ActivityError):
    def __init__(self, activity_id):
        super().__init__(f"没有编号为 {activity_id} 的活动")


class NotOpen(ActivityError):
    """A draft: not published for sign-up yet."""

    def __init__(self, activity: dict):
        self.activity = activity
        super().__init__(f"「{activity['title']}」还没有开放报名")


class DeadlinePassed(ActivityError):
    """Sign-up closed: the deadline or start passed, or the organiser closed it."""

    def __init__(self, activity: dict):
        self.activity = activity
        super().__init__(f"报名已截止：「{activity['title']}」")


class ActivityCancelled(ActivityError):
    def __init__(self, activity: dict):
        self.activity = activity
        super().__init__(f"活动已取消：「{activity['title']}」")


class AlreadySignedUp(ActivityError):
    def __init__(self, activity: dict, signup: dict, position: int | None):
        self.activity, self.signup, self.position = activity, signup, position
        super().__init__(f"已报名「{activity['title']}」")


class ActivityFull(ActivityError):
    def __init__(self, activity: dict):
        self.activity = activity
        super().__init__(f"「{activity['title']}」名额已满")


class SignupNotFound(ActivityError):
    def __init__(self, signup_id=None):
        super().__init__("没有找到这条报名记录" + (f"（编号 {signup_id}）" if signup_id else ""))


class CannotCancel(ActivityError):
    """Too late to cancel: the activity has started."""


class AttendanceStands(CannotCancel):
    """The member checked in: the attendance and its hours are a record, not a booking."""

    def __init__(self, activity: dict):
        self.activity = activity
        super().__init__(f"你已在「{activity['title']}」签到，出勤记录和志愿时长已经记下，"
                         "不能取消报名。如有问题请联系活动组织者。")


class CheckInError(ActivityError):
    """A check-in that cannot be recorded (wrong code, not signed up, outside the window)."""


class WrongCode(CheckInError):
    """No activity the member signed up for has this code. One sentence for an unknown code
    and for another activity's code, so guessing learns nothing."""

    def __init__(self, left: int, minutes: float):
        self.left = left
        tail = ""
        if left == 0:
            tail = f"输错次数已达上限，签到暂停 {minutes:g} 分钟。"
        elif left <= 2:
            tail = f"还可以再试 {left} 次。"
        super().__init__(WRONG_CODE + tail)


class TooManyAttempts(CheckInError):
    """Too many wrong codes in the window: check-in paused for this member."""

    def __init__(self, until: datetime, tz: ZoneInfo, limit: int, minutes: float):
        self.until = until
        super().__init__(f"签到码输错次数太多（{minutes:g} 分钟内 {limit} 次），签到已暂停，"
                         f"请在 {until.astimezone(tz):%H:%M} 后再试。签到码请向活动现场的组织者核对。")


class NotSignedUp(CheckInError):
    """A scanned code (from the venue's QR) of an activity the member has not signed up for."""

    def __init__(self, activity: dict):
        self.activity = activity
        super().__init__(f"你还没有报名「{activity['title']}」，不能签到。")


@dataclass
class SignupResult:
    signup: dict
    activity: dict
    position: int | None = None  # waitlist place; None when confirmed

    @property
    def confirmed(self) -> bool:
        return self.signup["status"] == "confirmed"


@dataclass
class CancelResult:
    signup: dict
    activity: dict
    promoted: list[dict] = field(default_factory=list)


@dataclass
class CheckInResult:
    signup: dict
    activity: dict
    already: bool = False


@dataclass
class AttemptRules:
    """How many wrong check-in codes a member may type per activity within a window."""

    max_wrong: int = 5
    window: timedelta = timedelta(hours=1)


# --- organisers: activities ---------------------------------------------------------------

def create_activity(db: Database, *, title: str, now: datetime, start: datetime | None = None,
                    end: datetime | None = None, deadline: datetime | None = None,
                    capacity: int | None = None, location: str | None = None,
                    group: str | None = None, hours: float | None = 0,
                    description: str | None = None, status: str = "open",
                    created_by: str | None = None, source_key: str | None = None,
                    checkout: bool = False, hours_step: float = 0.5,
                    project: int | None = None) -> int:
    """Create an activity and return its id. Raises InvalidActivity on unusable input.
    With `checkout` members also 签退 and hours come from the real attendance, rounded down
    to `hours_step`; `project` links it to an alliance project (项目化运作)."""
    values = {"title": (title or "").strip(), "grp": _blank(group), "location": _blank(location),
              "description": _blank(description), "start_at": to_db(start),
              "end_at": to_db(end), "deadline_at": to_db(deadline), "capacity": capacity,
              "hours": hours or 0, "status": status, "created_by": created_by,
              "source_key": source_key, "checkout": int(bool(checkout)),
              "hours_step": hours_step, "project_id": project}
    _validate(values, now, new=True)
    with immediate(db):
        if status == "open":
            values["checkin_code"] = _new_code(db)
        return store.insert_activity(db, values, now)


def update_activity(db: Database, activity_id: int, changes: dict, now: datetime,
                    tz: ZoneInfo) -> list[dict]:
    """Change an activity's fields (title, start, end, deadline, capacity, location, group,
    hours, description, project id; times as aware datetimes). More places promote the
    waitlist in order.
    Returns the promoted sign-ups. Raises ActivityNotFound, InvalidActivity."""
    columns = {"title": "title", "start": "start_at", "end": "end_at", "deadline": "deadline_at",
               "capacity": "capacity", "location": "location", "group": "grp",
               "hours": "hours", "description": "description", "checkout": "checkout",
               "hours_step": "hours_step", "project": "project_id"}
    unknown = set(changes) - set(columns)
    if unknown:
        raise InvalidActivity(f"不能修改：{', '.join(sorted(unknown))}")
    values = {}
    for key, value in changes.items():
        if key in ("start", "end", "deadline"):
            value = to_db(value)
        elif key in ("title", "location", "group", "description"):
            value = _blank(value) if key != "title" else (value or "").strip()
        elif key == "checkout":
            value = int(bool(value))
        values[columns[key]] = value
    with immediate(db):
        activity = _activity(db, activity_id)
        if activity["status"] == "cancelled":
            raise InvalidActivity("活动已取消，不能再修改")
        merged = {**activity, **values}
        _validate(merged, now, new=False)
        if merged["capacity"] is not None and merged["capacity"] < activity["confirmed"]:
            raise InvalidActivity(f"名额不能少于已确认的人数（{activity['confirmed']} 人）")
        store.update_activity(db, activity_id, values, now)
        if "capacity" in values and activity["status"] in ("open", "closed"):
            return _fill(db, _activity(db, activity_id), now, tz, "capacity")
    return []


def open_activity(db: Database, activity_id: int, now: datetime) -> dict:
    """Publish a draft (or reopen a closed activity) for sign-up; gives it a check-in code.
    Raises ActivityNotFound, InvalidActivity."""
    with immediate(db):
        activity = _activity(db, activity_id)
        if activity["status"] == "cancelled":
            raise InvalidActivity("活动已取消，不能再开放报名")
        _validate({**activity, "status": "open"}, now, new=False)
        start = start_of(activity)
        if start is not None and start <= now:
            raise InvalidActivity("活动已经开始，不能开放报名")
        values = {"status": "open"}
        if not activity.get("checkin_code"):
            values["checkin_code"] = _new_code(db)
        store.update_activity(db, activity_id, values, now)
        return _activity(db, activity_id)


def close_activity(db: Database, activity_id: int, now: datetime) -> dict:
    """Stop sign-ups (members already signed up stay). Raises ActivityNotFound, InvalidActivity."""
    with immediate(db):
        activity = _activity(db, activity_id)
        if activity["status"] == "cancelled":
            raise InvalidActivity("活动已取消")
        store.set_status(db, activity_id, "closed", now)
        return _activity(db, activity_id)


def cancel_activity(db: Database, activity_id: int, now: datetime, tz: ZoneInfo,
                    reason: str | None = None) -> list[str]:
    """Cancel the activity and queue a notice (outbox) to every member signed up, in the same
    transaction. Returns the openids told; the caller wakes the dispatcher."""
    with immediate(db):
        activity = _activity(db, activity_id)
        if activity["status"] == "cancelled":
            raise InvalidActivity("活动已经取消过了")
        store.set_status(db, activity_id, "cancelled", now)
        told = []
        for signup in store.live_signups_of_activity(db, activity_id):
            text = (f"活动已取消：「{activity['title']}」（原定 {when(activity, tz)}，"
                    f"{where(activity)}）。" + (f"原因：{reason}。" if reason else "")
                    + "你的报名随之取消，给你带来不便，敬请谅解。")
            deliveries.enqueue(db, dedupe_key=f"cancelled:{activity_id}:{signup['openid']}",
                               openid=signup["openid"], kind="notice", title="活动取消通知",
                               text=text, due_at=now, now=now,
                               data=_notice_data(activity, tz, "已取消"))
            told.append(signup["openid"])
        return told


def get_activity(db: Database, activity_id: int) -> dict:
    """One activity with confirmed/waitlisted counts. Raises ActivityNotFound."""
    return _activity(db, activity_id)


def list_activities(db: Database, statuses: tuple[str, ...] | None = None) -> list[dict]:
    return store.list_activities(db, statuses)


def list_open(db: Database, now: datetime) -> list[dict]:
    """Activities a member can sign up for now, soonest first, with counts."""
    return store.open_for_signup(db, now)


def search(db: Database, keyword: str, now: datetime) -> list[dict]:
    """Published activities whose title matches `keyword` (rapidfuzz), best first.

    Signable ones win over closed or cancelled ones, so an old cancelled namesake never
    hides the activity the member means."""
    candidates = store.searchable(db, now - SEARCH_BACK)
    scored = [(match_score(keyword, a["title"]), a) for a in candidates]
    scored = [(s, a) for s, a in scored if s >= MATCH_THRESHOLD]
    if not scored:
        return []
    live = [(s, a) for s, a in scored if is_signable(a, now)]
    pool = live or scored
    best = max(s for s, _ in pool)
    keep = [(s, a) for s, a in pool if s >= best - MATCH_SPREAD]
    if best > 100:
        keep = [(s, a) for s, a in keep if s > 100]
    keep.sort(key=lambda pair: (-pair[0], pair[1]["start_at"] or "", pair[1]["id"]))
    return [a for _, a in keep]


def is_signable(activity: dict, now: datetime) -> bool:
    try:
        check_signable(activity, now)
    except ActivityError:
        return False
    return True


def check_signable(activity: dict, now: datetime) -> None:
    """Raises ActivityCancelled, NotOpen or DeadlinePassed when sign-up is not possible."""
    if activity["status"] == "cancelled":
        raise ActivityCancelled(activity)
    if activity["status"] == "draft":
        raise NotOpen(activity)
    deadline = deadline_of(activity)
    if activity["status"] == "closed" or deadline is None or deadline <= now:
        raise DeadlinePassed(activity)


# --- members: sign-up, cancel, check-in ---------------------------------------------------

def sign_up(db: Database, activity_id: int, openid: str, now: datetime) -> SignupResult:
    """Sign a member up: confirmed while places remain (and nobody waits), else waitlisted.

    One read and one write under the write lock: the activity's counts, read inside the
    transaction, decide the status and the waitlist place (a new row's id is the highest,
    so it is last in line). Raises ActivityNotFound, ActivityCancelled, NotOpen,
    DeadlinePassed, AlreadySignedUp."""
    if not GUARD:
        return _sign_up_unguarded(db, activity_id, openid, now)
    with immediate(db):
        activity = _activity(db, activity_id)
        check_signable(activity, now)
        status = _new_status(activity)
        try:
            signup = store.insert_signup(db, activity_id, openid, status, now)
        except sqlite3.IntegrityError:
            raise _already(db, activity, openid) from None
    position = activity["waitlisted"] + 1 if status == "waitlisted" else None
    return SignupResult(signup, activity, position)


def _sign_up_unguarded(db: Database, activity_id: int, openid: str, now: datetime) -> SignupResult:
    """NEGATIVE CONTROL ONLY (GUARD = False): count in one transaction, insert in another."""
    with db.atomic():
        activity = _activity(db, activity_id)
        check_signable(activity, now)
        status = _new_status(activity)
    time.sleep(UNGUARDED_PAUSE)
    try:
        with db.atomic():
            signup = store.insert_signup(db, activity_id, openid, status, now)
    except sqlite3.IntegrityError:
        raise _already(db, activity, openid) from None
    return SignupResult(signup, activity, store.waitlist_position(db, signup["id"]))


def cancel_signup(db: Database, signup_id: int, now: datetime, tz: ZoneInfo,
                  openid: str | None = None) -> CancelResult:
    """Cancel a live sign-up (the member's own when openid is given) and, in the same
    transaction, promote the first waitlisted member into the freed place and queue their
    notice. Raises SignupNotFound, ActivityCancelled, CannotCancel."""
    with immediate(db):
        signup = store.get_signup(db, signup_id)
        if not signup or signup["status"] == "cancelled" or (openid and signup["openid"] != openid):
            raise SignupNotFound()
        activity = _activity(db, signup["activity_id"])
        if activity["status"] == "cancelled":
            raise ActivityCancelled(activity)
        if signup["checked_in_at"]:
            raise AttendanceStands(activity)
        start = start_of(activity)
        if start is not None and start <= now:
            raise CannotCancel(f"「{activity['title']}」已经开始，不能取消报名；如有变化请联系组织者")
        store.cancel(db, signup_id, now)
        promoted = _fill(db, _activity(db, activity["id"]), now, tz, f"cancel:{signup_id}")
        return CancelResult(store.get_signup(db, signup_id), activity, promoted)


def promote(db: Database, signup_id: int, actor: str, now: datetime, tz: ZoneInfo,
            *, add_place: bool = False) -> dict:
    """An organiser confirms a waitlisted member. Without a free place this needs add_place,
    which raises the capacity by one, so confirmed never exceeds capacity.
    Raises SignupNotFound, ActivityFull, ActivityCancelled."""
    with immediate(db):
        signup = store.get_signup(db, signup_id)
        if not signup or signup["status"] != "waitlisted":
            raise SignupNotFound(signup_id)
        activity = _activity(db, signup["activity_id"])
        if activity["status"] == "cancelled":
            raise ActivityCancelled(activity)
        if places_left(activity) == 0:
            if not add_place:
                raise ActivityFull(activity)
            store.update_activity(db, activity["id"], {"capacity": activity["capacity"] + 1}, now)
        store.confirm(db, signup_id, now, f"manual:{actor}")
        _notify_promoted(db, activity, signup, now, tz)
        return store.get_signup(db, signup_id)


def checkin_window(activity: dict) -> tuple[datetime, datetime]:
    """When check-in (and 签退) is possible: 1 h before the start to 2 h after the end."""
    start = start_of(activity)
    end = from_db(activity.get("end_at")) or start + ASSUMED_LENGTH
    return start - CHECKIN_OPENS_BEFORE, end + CHECKIN_CLOSES_AFTER


def check_in(db: Database, openid: str, code: str, now: datetime, tz: ZoneInfo,
             rules: AttemptRules | None = None, *, scanned: bool = False) -> CheckInResult:
    """Record the member's check-in with the activity's code and credit its volunteer hours
    (or, with 签退 on, wait for the check-out to count the real attendance).

    A code that matches none of the member's sign-ups is a wrong attempt, counted against
    each activity the member could still check into; after `rules.max_wrong` within
    `rules.window` check-in pauses for that activity. `scanned`: the code came from the
    venue's QR code, so a member who has not signed up may be told which activity it is.
    Raises WrongCode, TooManyAttempts, NotSignedUp, CheckInError, ActivityCancelled."""
    rules = rules or AttemptRules()
    code = normalize_code(code)
    since = now - rules.window
    with immediate(db):
        live = store.member_live_signups(db, openid)
        mine = sorted(((a, s) for a, s in live
                       if code and normalize_code(a["checkin_code"] or "") == code),
                      key=lambda pair: pair[0]["status"] == "cancelled")  # a reused code: live first
        if mine:
            activity, signup = mine[0]
            wrong = store.wrong_attempts(db, openid, activity["id"], since)
            if len(wrong) >= rules.max_wrong:
                error: ActivityError = _too_many(wrong, rules, tz)
            else:
                error = _check_in_rules(activity, signup, now, tz)
                if error is None and signup["checked_in_at"]:
                    return CheckInResult(signup, activity, already=True)
                if error is None:
                    credit = None if activity.get("checkout") else float(activity["hours"] or 0)
                    store.check_in(db, signup["id"], now, credit)
                    return CheckInResult(store.get_signup(db, signup["id"]), activity)
        else:
            error = _wrong_code(db, openid, code, live, now, tz, rules, since, scanned)
    raise error


def _check_in_rules(activity: dict, signup: dict, now: datetime,
                    tz: ZoneInfo) -> ActivityError | None:
    if activity["status"] == "cancelled":
        return ActivityCancelled(activity)
    if signup["status"] == "waitlisted":
        return CheckInError(f"你在「{activity['title']}」的候补名单上，报名未确认，不能签到。"
                            "如已到场请联系组织者。")
    if signup["checked_in_at"]:
        return None
    opens, closes = checkin_window(activity)
    if now < opens:
        return CheckInError(f"签到还没开始：「{activity['title']}」"
                            f"{fmt_local(start_of(activity), tz)} 开始，开始前1小时起可以签到。")
    if now > closes:
        return CheckInError(f"「{activity['title']}」的签到已经结束。如确实参加了，请联系组织者补录。")
    return None


def _wrong_code(db: Database, openid: str, code: str, live: list[tuple[dict, dict]],
                now: datetime, tz: ZoneInfo, rules: AttemptRules, since: datetime,
                scanned: bool) -> ActivityError:
    """Count a wrong attempt against every activity the member could still check into."""
    buckets = [a["id"] for a, s in live if a["status"] != "cancelled" and a.get("start_at")
               and not s["checked_in_at"] and now <= checkin_window(a)[1]] or [NO_SIGNUP_BUCKET]
    counts = {b: store.wrong_attempts(db, openid, b, since) for b in buckets}
    open_buckets = [b for b in buckets if len(counts[b]) < rules.max_wrong]
    if not open_buckets:
        return min((_too_many(w, rules, tz) for w in counts.values()), key=lambda e: e.until)
    for bucket in open_buckets:
        store.record_wrong_attempt(db, openid, bucket, code, now)
    if scanned and code:
        named = [a for a in store.by_checkin_code(db, code) if a["status"] != "cancelled"]
        if named:
            return NotSignedUp(named[0])
    return WrongCode(rules.max_wrong - 1 - max(len(counts[b]) for b in open_buckets),
                     rules.window.total_seconds() / 60)


def _too_many(wrong: list[str], rules: AttemptRules, tz: ZoneInfo) -> TooManyAttempts:
    until = from_db(wrong[-rules.max_wrong]) + rules.window
    return TooManyAttempts(until, tz, rules.max_wrong, rules.window.total_seconds() / 60)


def attended_hours(activity: dict, checked_in: datetime, checked_out: datetime) -> float:
    """Hours of real attendance, inside the activity's time, rounded down to its step."""
    start = start_of(activity)
    end = from_db(activity.get("end_at")) or start + ASSUMED_LENGTH
    spent = (min(checked_out, end) - max(checked_in, start)).total_seconds() / 3600
    step = float(activity.get("hours_step") or 0.5)
    return max(0.0, math.floor(spent / step + 1e-9) * step)


def check_out(db: Database, openid: str, now: datetime) -> CheckInResult:
    """签退: end the member's attendance at an activity with 签退 turned on and credit the
    hours really spent. Raises CheckInError when there is nothing to check out of."""
    with immediate(db):
        found = [(a, s) for a, s in store.member_live_signups(db, openid)
                 if a.get("checkout") and s["checked_in_at"] and a["status"] != "cancelled"
                 and now <= checkin_window(a)[1]]
        if not found:
            raise CheckInError("没有需要签退的活动：签退只用于组织者开启了签退、且你已签到的活动。")
        activity, signup = found[0]
        if signup["checked_out_at"]:
            return CheckInResult(signup, activity, already=True)
        hours = attended_hours(activity, from_db(signup["checked_in_at"]), now)
        store.check_out(db, signup["id"], now, hours)
        return CheckInResult(store.get_signup(db, signup["id"]), activity)


def get_signup(db: Database, signup_id: int) -> dict | None:
    return store.get_signup(db, signup_id)


def member_signups(db: Database, openid: str, now: datetime) -> list[dict]:
    """The member's live sign-ups for activities not yet ended (with waitlist position)."""
    return store.member_upcoming(db, openid, now)


def hours_total(db: Database, openid: str) -> tuple[float, int]:
    """(volunteer hours, number of activities) credited to the member."""
    return store.hours_total(db, openid)


def signup_list(db: Database, activity_id: int) -> list[dict]:
    """Every sign-up of the activity with name, unit, phone, in sign-up order.
    Raises ActivityNotFound."""
    _activity(db, activity_id)
    return store.activity_signups(db, activity_id)


def correct_hours(db: Database, signup_id: int, hours: float, reason: str, actor: str,
                  now: datetime) -> dict:
    """Set the hours credited for one attended sign-up of an activity that has started, and log
    old value, new value, actor and reason (hour_corrections), in one transaction.
    Hours are a finite number from 0 up to the activity's length (谁组织谁记录，谁记录谁证明).
    Raises SignupNotFound, InvalidActivity."""
    reason = (reason or "").strip()
    if not reason:
        raise InvalidActivity("更正志愿时长必须写明原因")
    if not actor:
        raise InvalidActivity("更正志愿时长必须写明更正人")
    if hours is None or not math.isfinite(hours) or not 0 <= hours <= MAX_HOURS:
        raise InvalidActivity(f"志愿时长应在 0–{MAX_HOURS} 小时之间（0 或正数）")
    with immediate(db):
        signup = store.get_signup(db, signup_id)
        if not signup or signup["status"] != "confirmed":
            raise SignupNotFound(signup_id)
        activity = _activity(db, signup["activity_id"])
        start = start_of(activity)
        if start is None or start > now:
            raise InvalidActivity("活动还没开始，不能记志愿时长")
        if not signup["checked_in_at"]:
            raise InvalidActivity("这位成员没有签到：志愿时长只记给签到参加了活动的成员")
        longest = length_hours(activity)
        if hours > longest:
            raise InvalidActivity(f"志愿时长不能超过活动时长（{fmt_hours(longest)} 小时）")
        store.insert_correction(db, signup_id, signup["hours"], float(hours), reason, actor, now)
        store.set_hours(db, signup_id, float(hours))
        return store.get_signup(db, signup_id)


def length_hours(activity: dict) -> float:
    """The activity's length in hours (start to end; without an end, the longer of the
    assumed length and its planned hours)."""
    start, end = start_of(activity), from_db(activity.get("end_at"))
    if start is not None and end is not None:
        return (end - start).total_seconds() / 3600
    return max(ASSUMED_LENGTH.total_seconds() / 3600, float(activity.get("hours") or 0))


def volunteer_record(db: Database, openid: str) -> dict:
    """A member's volunteer service record (《志愿服务记录与证明出具办法（试行）》: who, which
    activity, organiser, date, hours), with every logged correction. Raises SignupNotFound
    when the openid never wrote to the bot."""
    member = members.get(db, openid)
    if member is None:
        raise SignupNotFound()
    rows = store.service_records(db, openid)
    fixes = store.corrections(db, [r["signup_id"] for r in rows])
    for row in rows:
        row["organiser"] = row["grp"] or row["created_by"] or ""
        row["corrections"] = [c for c in fixes if c["signup_id"] == row["signup_id"]]
    total = sum(float(r["credited_hours"] or 0) for r in rows)
    return {"member": member, "records": rows, "total_hours": total,
            "count": sum(1 for r in rows if (r["credited_hours"] or 0) > 0)}


def export_rows(db: Database, activity_id: int, tz: ZoneInfo, *, reveal: bool = False,
                keep=None) -> tuple[list[str], list[list]]:
    """(header, rows) of an activity's sign-up list for CSV/XLSX; phones masked unless reveal;
    `keep(unit)` (a console scope's has_unit) leaves out members outside the account's scope."""
    header = ["序号", "姓名", "单位", "手机", "状态", "候补位次", "报名时间", "确认时间",
              "取消时间", "签到时间", "志愿时长"]
    rows = []
    kept = [s for s in signup_list(db, activity_id) if keep is None or keep(s["unit"])]
    for n, s in enumerate(kept, 1):
        phone = s["phone"] or ""
        rows.append([n, s["name"] or "", s["unit"] or "", phone if reveal else mask_phone(phone),
                     SIGNUP_WORDS.get(s["status"], s["status"]),
                     s["position"] if s["status"] == "waitlisted" else "",
                     fmt_iso_local(from_db(s["created_at"]), tz),
                     fmt_iso_local(from_db(s["confirmed_at"]), tz),
                     fmt_iso_local(from_db(s["cancelled_at"]), tz),
                     fmt_iso_local(from_db(s["checked_in_at"]), tz),
                     "" if s["hours"] is None else float(s["hours"])])
    return header, rows


# --- inside the transactions ----------------------------------------------------------------

def _activity(db: Database, activity_id: int) -> dict:
    activity = store.get_activity(db, activity_id)
    if activity is None:
        raise ActivityNotFound(activity_id)
    return activity


def _new_status(activity: dict) -> str:
    """Confirmed while a place is free and nobody is waiting; otherwise the end of the line.
    `activity` carries its counts as read in the caller's transaction."""
    if activity["capacity"] is None:
        return "confirmed"
    if activity["confirmed"] < activity["capacity"] and activity["waitlisted"] == 0:
        return "confirmed"
    return "waitlisted"


def _already(db: Database, activity: dict, openid: str) -> AlreadySignedUp:
    existing = store.live_signup(db, activity["id"], openid)
    position = store.waitlist_position(db, existing["id"]) if existing else None
    return AlreadySignedUp(activity, existing or {}, position)


def _fill(db: Database, activity: dict, now: datetime, tz: ZoneInfo, reason: str) -> list[dict]:
    """Promote waitlisted members, first come first served, into the free places."""
    promoted = []
    while True:
        free = places_left({**activity, "confirmed": store.count_confirmed(db, activity["id"])})
        if free == 0:
            break
        head = store.first_waitlisted(db, activity["id"])
        if head is None:
            break
        store.confirm(db, head["id"], now, reason)
        _notify_promoted(db, activity, head, now, tz)
        promoted.append(store.get_signup(db, head["id"]))
    return promoted


def _notify_promoted(db: Database, activity: dict, signup: dict, now: datetime,
                     tz: ZoneInfo) -> None:
    text = (f"候补递补成功！你候补的「{activity['title']}」有名额空出，报名已确认。\n"
            f"时间：{when(activity, tz)}\n地点：{where(activity)}\n"
            "不能参加请回复“取消报名”，把名额留给其他人。")
    deliveries.enqueue(
        db, dedupe_key=f"promoted:{activity['id']}:{signup['openid']}:{signup['id']}",
        openid=signup["openid"], kind="notice", title="候补递补成功", text=text, due_at=now,
        now=now, data=_notice_data(activity, tz, "报名已确认"), expires_at=start_of(activity))


def _notice_data(activity: dict, tz: ZoneInfo, state: str) -> dict:
    return {"keyword1": activity["title"][:20], "keyword2": when(activity, tz)[:20],
            "keyword3": state, "activity_id": activity["id"]}


def _new_code(db: Database) -> str:
    """A 6-digit check-in code no live activity uses."""
    while True:
        code = f"{secrets.randbelow(900000) + 100000}"
        if not store.checkin_code_taken(db, code):
            return code


def _blank(value: str | None) -> str | None:
    value = (value or "").strip()
    return value or None


def _validate(values: dict, now: datetime, *, new: bool) -> None:
    title = values.get("title") or ""
    if not title:
        raise InvalidActivity("活动名称不能为空")
    if len(title) > MAX_TITLE:
        raise InvalidActivity(f"活动名称太长（最多 {MAX_TITLE} 个字）")
    if values.get("status") not in STATUSES:
        raise InvalidActivity(f"未知状态：{values.get('status')}")
    start, end = from_db(values.get("start_at")), from_db(values.get("end_at"))
    deadline = from_db(values.get("deadline_at"))
    if values["status"] != "draft" and start is None:
        raise InvalidActivity("请设置活动开始时间（--start \"YYYY-MM-DD HH:MM\"）")
    if new and values["status"] == "open" and start is not None and start <= now:
        raise InvalidActivity("开始时间已经过去，不能开放报名")
    if end is not None and (start is None or end <= start):
        raise InvalidActivity("结束时间必须晚于开始时间")
    if deadline is not None and (start is None or deadline > start):
        raise InvalidActivity("报名截止时间不能晚于开始时间")
    capacity = values.get("capacity")
    if capacity is not None and (not isinstance(capacity, int) or not 1 <= capacity <= MAX_CAPACITY):
        raise InvalidActivity(f"名额应为正整数，最多 {MAX_CAPACITY}（不限名额就不填）")
    hours = values.get("hours") or 0
    if not 0 <= float(hours) <= MAX_HOURS:
        raise InvalidActivity(f"志愿时长应在 0–{MAX_HOURS} 小时之间")
    step = values.get("hours_step")
    if step is not None and float(step) not in HOURS_STEPS:
        raise InvalidActivity("时长取整单位应为 " + "、".join(f"{x:g}" for x in HOURS_STEPS) + " 小时之一")
