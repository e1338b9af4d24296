"""The URL WeChat's servers call: /wechat, plaintext and safe (AES) mode.

Order matters: signature and timestamp (403), size limit (413), safe mode required when
configured (403), parse (400), a signed URL that another message already used (403), route.
Nothing is recorded for a request that fails any check; a database that cannot be written
is 503, so WeChat retries and the retry runs the message again.
"""
from __future__ import annotations

import logging
import sqlite3
import time

from flask import Blueprint, Response, abort, current_app, request

from handlers import pipeline
from storage.messages import ReplayedNonce
from wechat import crypto, replies
from wechat.messages import BadMessage, extract_encrypted, parse

log = logging.getLogger(__name__)
bp = Blueprint("wechat", __name__)


def _runtime():
    return current_app.extensions["chengcheng"]


@bp.route("/wechat", methods=["GET", "POST"])
def wechat() -> Response:
    rt = _runtime()
    signature, timestamp, nonce = (request.args.get(k) for k in ("signature", "timestamp", "nonce"))
    if not (signature and timestamp and nonce):
        abort(400, "缺少 signature/timestamp/nonce")
    if not crypto.verify(signature, rt.token, timestamp, nonce):
        log.warning("bad signature from %s", request.remote_addr)
        abort(403)
    if not _fresh(timestamp, rt.settings.wechat_timestamp_tolerance):
        log.warning("stale or odd timestamp %.20r from %s", timestamp, request.remote_addr)
        abort(403)
    if request.method == "GET":
        echostr = request.args.get("echostr")
        if echostr is None:
            abort(400, "缺少 echostr")
        return Response(echostr, mimetype="text/plain")

    if (request.content_length or 0) > rt.settings.max_body_bytes:
        abort(413)
    body = request.get_data(cache=False)
    if len(body) > rt.settings.max_body_bytes:
        abort(413)
    safe = request.args.get("encrypt_type", "raw").lower() == "aes"
    if rt.settings.wechat_aes_key and not safe and not rt.settings.wechat_compat_mode:
        log.warning("plaintext POST refused: safe mode is configured (WECHAT_COMPAT_MODE off)")
        abort(403)
    try:
        msg = parse(_decrypt(rt, body, timestamp, nonce) if safe else body)
    except BadMessage as exc:
        abort(400, f"无法解析的消息：{exc}")

    try:
        text = pipeline.handle(rt, msg, signed=(timestamp, nonce))
    except ReplayedNonce:
        log.warning("replayed signed URL (timestamp %s) with another body from %s", timestamp,
                    request.remote_addr)
        abort(403)
    except sqlite3.OperationalError as exc:  # disk full, read-only, locked past the busy timeout
        log.error("cannot record %s: %s; answering 503 so WeChat retries", msg.dedupe_key, exc)
        abort(503)
    if text is None:
        return Response(replies.SUCCESS, mimetype="text/plain")
    xml = replies.text_xml(to=msg.openid, account=msg.account, content=text, now=int(time.time()))
    if safe:
        xml = _safe_mode(rt).encrypt(xml, nonce, timestamp)
    return Response(xml, mimetype="application/xml")


def _fresh(timestamp: str, tolerance: int) -> bool:
    """WeChat's timestamp within ±tolerance of the real clock (never BOT_FAKE_NOW's)."""
    if not timestamp.isascii() or not timestamp.isdigit() or len(timestamp) > 12:
        return False
    return abs(time.time() - int(timestamp)) <= tolerance


def _safe_mode(rt) -> crypto.SafeMode:
    if not rt.settings.wechat_aes_key:
        abort(400, "安全模式需要配置 WECHAT_AES_KEY")
    return rt.service("safe_mode", lambda: crypto.SafeMode(
        rt.token, rt.settings.wechat_aes_key, rt.settings.wechat_appid))


def _decrypt(rt, body: bytes, timestamp: str, nonce: str) -> bytes:
    msg_signature = request.args.get("msg_signature")
    if not msg_signature:
        abort(403)
    encrypted = extract_encrypted(body)
    if not crypto.verify(msg_signature, rt.token, timestamp, nonce, encrypted):
        abort(403)
    try:
        return _safe_mode(rt).decrypt(encrypted).encode("utf-8")
    except crypto.CryptoError as exc:
        raise BadMessage(str(exc)) from exc
