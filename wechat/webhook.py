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
from urllib.parse import parse_qsl

from flask import Blueprint, Flask, Response, abort, current_app, request
from werkzeug.datastructures import MultiDict
from werkzeug.http import HTTP_STATUS_CODES

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
    status, mimetype, text = respond(_runtime(), request.method, request.args,
                                     request.content_length,
                                     lambda: request.get_data(cache=False), request.remote_addr)
    return Response(text, status=status, mimetype=mimetype)


def respond(rt, method: str, args, content_length: int | None, read_body,
            remote_addr: str | None) -> tuple[int, str, str]:
    """(status, mimetype, text) for one call of /wechat; refusals raise HTTPException (abort).

    `args` is the query string as a MultiDict; `read_body()` returns the raw body."""
    signature, timestamp, nonce = (args.get(k) for k in ("signature", "timestamp", "nonce"))
    if not (signature and timestamp and nonce):
        abort(400, "缺少 signature/timestamp/nonce")
    if not crypto.verify(signature, rt.token, timestamp, nonce):
        log.warning("bad signature from %s", remote_addr)
        abort(403)
    if not _fresh(timestamp, rt.settings.wechat_timestamp_tolerance):
        log.warning("stale or odd timestamp %.20r from %s", timestamp, remote_addr)
        abort(403)
    if method == "GET":
        echostr = args.get("echostr")
        if echostr is None:
            abort(400, "缺少 echostr")
        return 200, "text/plain", echostr

    if (content_length or 0) > rt.settings.max_body_bytes:
        abort(413)
    body = read_body()
    if len(body) > rt.settings.max_body_bytes:
        abort(413)
    safe = args.get("encrypt_type", "raw").lower() == "aes"
    if rt.settings.wechat_aes_key and not safe and not rt.settings.wechat_compat_mode:
        log.warning("plaintext POST refused: safe mode is configured (WECHAT_COMPAT_MODE off)")
        abort(403)
    try:
        msg = parse(_decrypt(rt, args, body, timestamp, nonce) if safe else body)
    except BadMessage as exc:
        abort(400, f"无法解析的消息：{exc}")

    try:
        text = pipeline.handle(rt, msg, signed=(timestamp, nonce))
    except ReplayedNonce:
        log.warning("replayed signed URL (timestamp %s) with another body from %s", timestamp,
                    remote_addr)
        abort(403)
    except sqlite3.OperationalError as exc:  # disk full, read-only, locked past the busy timeout
        log.error("cannot record %s: %s; answering 503 so WeChat retries", msg.dedupe_key, exc)
        abort(503)
    if text is None:
        return 200, "text/plain", replies.SUCCESS
    xml = replies.text_xml(to=msg.openid, account=msg.account, content=text, now=int(time.time()))
    if safe:
        xml = _safe_mode(rt).encrypt(xml, nonce, timestamp)
    return 200, "application/xml", xml


class Direct:
    """WSGI middleware: WeChat's POSTs to /wechat go straight to `respond`, without Flask's
    request context (URL map, session, hooks, Response object), which cost as much as the
    handlers' own work. Refusals and errors are rendered by the Flask app's error handlers, so
    every answer reads as before; anything else goes to the Flask app."""

    def __init__(self, app: Flask, rt) -> None:
        self.app, self.rt, self.wsgi_app = app, rt, app.wsgi_app

    def __call__(self, environ: dict, start_response):
        length = environ.get("CONTENT_LENGTH") or ""
        if (environ.get("PATH_INFO") != "/wechat" or environ.get("REQUEST_METHOD") != "POST"
                or not length.isdigit()):
            return self.wsgi_app(environ, start_response)
        args = MultiDict(parse_qsl(environ.get("QUERY_STRING", ""), keep_blank_values=True))
        try:
            status, mimetype, text = respond(
                self.rt, "POST", args, int(length),
                lambda: environ["wsgi.input"].read(int(length)), environ.get("REMOTE_ADDR"))
        except Exception as exc:  # abort() and the rest: the app's error handlers answer
            with self.app.request_context(environ):
                response = self.app.make_response(self.app.handle_user_exception(exc))
            return response(environ, start_response)
        body = text.encode("utf-8")
        start_response(f"{status} {HTTP_STATUS_CODES[status]}", [("Content-Type", f"{mimetype}; charset=utf-8"),
                                         ("Content-Length", str(len(body)))])
        return [body]


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


def _decrypt(rt, args, body: bytes, timestamp: str, nonce: str) -> bytes:
    msg_signature = args.get("msg_signature")
    if not msg_signature:
        abort(403)
    encrypted = extract_encrypted(body)
    if not crypto.verify(msg_signature, rt.token, timestamp, nonce, encrypted):
        abort(403)
    try:
        return _safe_mode(rt).decrypt(encrypted).encode("utf-8")
    except crypto.CryptoError as exc:
        raise BadMessage(str(exc)) from exc
