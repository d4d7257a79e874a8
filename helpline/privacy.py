"""Pseudonymity: contacts are known by a keyed hash; reply addresses are kept only sealed."""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from helpline.errors import HelplineError

# Unambiguous letters and digits for references people may read aloud or type on a phone.
_REFERENCE_ALPHABET = "ABCDEFGHJKLMNPQRSTUVWXYZ23456789"


class SealError(HelplineError):
    """A sealed address could not be opened (wrong key or tampered data)."""


class Privacy:
    """Derives contact keys and seals addresses with keys derived from the one secret."""

    def __init__(self, secret_key: str) -> None:
        root = secret_key.encode()
        self._hash_key = hmac.new(root, b"helpline contact key v1", hashlib.sha256).digest()
        seal_key = hmac.new(root, b"helpline address seal v1", hashlib.sha256).digest()
        self._code_key = hmac.new(root, b"helpline handover code v1", hashlib.sha256).digest()
        self._aead = AESGCM(seal_key)

    def contact_key(self, channel: str, address: str) -> str:
        """HMAC-SHA256 of channel and address: recognises a returning person, reveals nothing."""
        # WhatsApp and SMS from the same phone are different contacts on purpose: a person
        # may consider one of them safe and the other not.
        message = f"{channel}\x00{address}".encode()
        return hmac.new(self._hash_key, message, hashlib.sha256).hexdigest()

    def code_hash(self, code: str) -> str:
        """The keyed hash a handover code word is stored and looked up by ("K7MP-QW3X",
        "k7mp qw3x" and "K7MPQW3X" are the same code)."""
        folded = "".join(c for c in code.upper() if c.isalnum())
        return hmac.new(self._code_key, folded.encode(), hashlib.sha256).hexdigest()

    def seal(self, address: str, context: str) -> str:
        """AES-GCM with the contact key as associated data, so a sealed address cannot be
        moved to another contact's row."""
        nonce = secrets.token_bytes(12)
        box = self._aead.encrypt(nonce, address.encode(), context.encode())
        return base64.urlsafe_b64encode(nonce + box).decode()

    def open(self, sealed: str, context: str) -> str:
        try:
            raw = base64.urlsafe_b64decode(sealed.encode())
            return self._aead.decrypt(raw[:12], raw[12:], context.encode()).decode()
        except (InvalidTag, ValueError) as exc:
            raise SealError("a sealed address could not be opened") from exc


def new_reference(length: int = 6) -> str:
    """A short reference an adviser sees instead of any address (and a person can quote)."""
    return "".join(secrets.choice(_REFERENCE_ALPHABET) for _ in range(length))


def new_code() -> str:
    """A code word to carry a conversation to another channel: 8 unambiguous characters
    (about 40 bits), shown in two groups so it is easy to type on a phone."""
    raw = new_reference(8)
    return f"{raw[:4]}-{raw[4:]}"


def new_token() -> str:
    """An unguessable web chat session token (the web channel's 'address')."""
    return secrets.token_urlsafe(24)
