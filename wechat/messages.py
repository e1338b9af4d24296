"""Inbound WeChat XML -> a plain Message. Anything odd becomes BadMessage, never a crash."""
from __future__ import annotations

import functools
from dataclasses import dataclass, field
from xml.etree import ElementTree

FORBIDDEN = (b"<!DOCTYPE", b"<!ENTITY", b"<!doctype", b"<!entity")
# Events that are something the member did (WeChat opens the 48-hour customer-service window for
# these): following (with any EventKey), scanning a parametric QR code, CLICK and scancode menus.
# LOCATION reports, VIEW, delivery reports (TEMPLATESENDJOBFINISH, MASSSENDJOBFINISH),
# subscribe_msg_* and platform notices are not.
MEMBER_EVENTS = frozenset({"subscribe", "subscribe_scan", "subscribe_scan_product", "scan",
                           "click", "scancode_push", "scancode_waitmsg"})


class BadMessage(ValueError):
    """The body is not a WeChat message we can read."""


@dataclass
class Message:
    """What a handler sees: who, what type, and the words (text, or voice recognition)."""

    openid: str
    account: str
    type: str  # text, voice, image, location, link, video, shortvideo, event, or WeChat's own
    create_time: int
    msg_id: str | None = None
    content: str = ""
    event: str | None = None  # subscribe, unsubscribe, click, view, scan, subscribe_scan ...
    event_key: str | None = None
    raw: dict = field(default_factory=dict)

    @property
    def dedupe_key(self) -> str:
        """WeChat's retry identity: MsgId, or FromUserName+CreateTime for events."""
        if self.msg_id and self.msg_id != "0":
            return f"msg:{self.msg_id}"
        return f"evt:{self.openid}:{self.create_time}:{self.event or self.type}"

    @functools.cached_property
    def text(self) -> str:  # read some 40 times per message by the handlers; content never changes
        return (self.content or "").strip()

    @property
    def is_member_action(self) -> bool:
        """A message, or an event the member caused: only these count as the member's
        interaction (a member row, last_seen, the customer-service window)."""
        return self.type != "event" or self.event in MEMBER_EVENTS


def extract_encrypted(body: bytes) -> str:
    """The Encrypt field of a safe-mode envelope. Raises BadMessage."""
    value = _xml(body).get("Encrypt")
    if not value:
        raise BadMessage("no Encrypt field")
    return value


def parse(body: bytes | str) -> Message:
    """Raises BadMessage for malformed XML or a message without sender/type/time.

    One parse of the XML; events are named as WeChat's docs (and wechatpy) name them."""
    raw = body.encode("utf-8") if isinstance(body, str) else body
    data = _xml(raw)
    for required in ("FromUserName", "MsgType", "CreateTime"):
        if not (data.get(required) or "").strip():
            raise BadMessage(f"missing {required}")
    try:
        create_time = int(data["CreateTime"])
    except ValueError as exc:
        raise BadMessage("CreateTime is not a number") from exc
    msg_type = data["MsgType"].strip().lower()
    content = ""
    if msg_type == "text":
        content = data.get("Content") or ""
    elif msg_type == "voice":
        content = data.get("Recognition") or ""
    event = event_key = None
    if msg_type == "event" or msg_type.startswith("device_"):
        event = (data.get("Event") or "").strip().lower() or None
        if msg_type.startswith("device_"):
            event = f"device_{event}" if event else msg_type
        key = data.get("EventKey")
        event_key = key.strip() if key is not None else None
        if event == "subscribe" and event_key:
            if event_key.startswith(("scanbarcode|", "scanimage|")):
                event = "subscribe_scan_product"
            elif event_key.startswith("qrscene_"):
                event, event_key = "subscribe_scan", event_key[len("qrscene_"):]
    return Message(openid=data["FromUserName"].strip(), account=data.get("ToUserName") or "",
                   type=msg_type, create_time=create_time, msg_id=data.get("MsgId") or None,
                   content=content, event=event, event_key=event_key, raw=data)


def _xml(body: bytes) -> dict[str, str | None]:
    """The children of the <xml> root as tag -> text (None for a child with children)."""
    if any(marker in body for marker in FORBIDDEN):
        raise BadMessage("DTDs and entities are not accepted")
    try:
        root = ElementTree.fromstring(body.decode("utf-8"))
    except (ElementTree.ParseError, UnicodeDecodeError, ValueError) as exc:
        raise BadMessage("malformed XML") from exc
    if root.tag != "xml":
        raise BadMessage("root element must be <xml>")
    data: dict[str, str | None] = {}
    for child in root:
        if child.tag not in data:
            data[child.tag] = None if len(child) else (child.text or "")
    return data
