"""The URL WeChat's servers call: /wechat, plaintext and safe (AES) mode.

Order matters: size limit, then signature (403), then parse (400), then route.
Nothing is recorded for a request that fails any check.
"""
from __future__ import annotations

import logging
import time

from flask import Blueprint, Response, abort, current_app, request

from handlers import pipeline
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
    try:
        if safe:
            xml = _decrypt(rt, body, timestamp, nonce)
            msg = parse(xml)
        else:
            msg = parse(body)
    except BadMessage as exc:
        abort(400, f"无法解析的消息：{exc}")

    text = pipeline.handle(rt, msg)
    if text is None:
        return Response(replies.SUCCESS, mimetype="text/plain")
    xml = replies.text_xml(to=msg.openid, account=msg.account, content=text, now=int(time.time()))
    if safe:
        xml = _safe_mode(rt).encrypt(xml, nonce, timestamp)
    return Response(xml, mimetype="application/xml")


def _safe_mode(rt) -> crypto.SafeMode:
    if not rt.settings.wechat_aes_key:
        abort(400, "安全模式需要配置 WECHAT_AES_KEY")
    return rt.service("safe_mode", lambda: crypto.SafeMode(
        rt.token, rt.settings.wechat_aes_key, rt.settings.wechat_appid))


def _decrypt(rt, body: bytes, timestamp: str, nonce: str) -> bytes:
    msg_signature = request.args.get("msg_signature")
    if not msg_signature:
        abort(400, "缺少 msg_signature")
    encrypted = extract_encrypted(body)
    if not crypto.verify(msg_signature, rt.token, timestamp, nonce, encrypted):
        abort(403)
    try:
        return _safe_mode(rt).decrypt(encrypted).encode("utf-8")
    except crypto.CryptoError as exc:
        raise BadMessage(str(exc)) from exc
