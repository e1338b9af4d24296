"""WeChat's signatures and safe (AES) mode.

Signatures are checked here, in constant time, before any body is parsed; wechatpy's own
checks compare with `!=`, so only its AES cipher is used.
"""
from __future__ import annotations

import base64
import hashlib
import hmac
import time

from wechatpy.crypto import PrpCrypto, WeChatCrypto
from wechatpy.exceptions import InvalidAppIdException

_ENVELOPE_FIELD = "Encrypt"


class CryptoError(ValueError):
    """A safe-mode body that cannot be decrypted for this account."""


def signature(*parts: str) -> str:
    """WeChat's signature: sha1 of the parts sorted and joined."""
    return hashlib.sha1("".join(sorted(parts)).encode("utf-8")).hexdigest()


def verify(expected: str | None, *parts: str) -> bool:
    if not expected:
        return False
    return hmac.compare_digest(signature(*parts), expected.lower())


class SafeMode:
    """Decrypts an incoming Encrypt value and encrypts a reply envelope for one account."""

    def __init__(self, token: str, aes_key: str, appid: str):
        try:
            key = base64.b64decode(aes_key + "=")
        except Exception as exc:  # binascii.Error
            raise CryptoError("WECHAT_AES_KEY is not valid base64") from exc
        if len(key) != 32:
            raise CryptoError("WECHAT_AES_KEY must decode to 32 bytes")
        self._key = key
        self._appid = appid
        self._wechatpy = WeChatCrypto(token, aes_key, appid)

    def decrypt(self, encrypted: str) -> str:
        """The plaintext XML inside an Encrypt value. Raises CryptoError."""
        try:
            return PrpCrypto(self._key).decrypt(encrypted, self._appid)
        except InvalidAppIdException as exc:
            raise CryptoError("message is for another AppID") from exc
        except Exception as exc:
            raise CryptoError("cannot decrypt message") from exc

    def encrypt(self, xml: str, nonce: str, timestamp: str | None = None) -> str:
        """A reply envelope (Encrypt, MsgSignature, TimeStamp, Nonce)."""
        return self._wechatpy.encrypt_message(xml, nonce, timestamp or str(int(time.time())))
