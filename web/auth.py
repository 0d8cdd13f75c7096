"""Who may write on the dashboard: hashed secrets, constant-time checks, CSRF tokens.

Secrets are kept only as scrypt hashes (``okr ui hash`` prints one), in the format
``scrypt:16384:8:1:<salt>:<hash>`` (n, r, p, then salt and hash in URL-safe base64), so a
leaked ``.env`` hands out no token or password. No ``$`` in it: shells and Compose files
would expand it. A hash that does not parse never matches.

Forms carry a CSRF token: a signed double-submit cookie. The page sets a cookie holding a
random nonce and its HMAC under a key made when the process starts; the form repeats it in
a hidden field; a write is accepted only when both agree and the signature holds. A site
that cannot read our cookie (the browser's same-origin rule, ``SameSite=Strict``) cannot
forge the field. The JSON API needs no CSRF token: it authenticates with an
``Authorization`` header, which a browser never adds to a cross-site request by itself.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import secrets
from dataclasses import dataclass

from okr_pipeline.okr_core.settings import UiSettings

__all__ = [
    "CSRF_COOKIE",
    "TOKEN_AUTHOR",
    "Credentials",
    "CsrfSigner",
    "authenticate",
    "hash_secret",
    "verify_secret",
    "writes_enabled",
]

SCHEME = "scrypt"
# scrypt's interactive-login parameters (16 MiB of memory, tens of milliseconds).
N, R, P = 2**14, 8, 1
SALT_BYTES = 16
HASH_BYTES = 32
MAX_N = 2**20  # a hash asking for more work than this is refused, not computed
CSRF_COOKIE = "okr_csrf"
#: The author recorded for a check-in made with the token (users are named by themselves).
TOKEN_AUTHOR = "token"


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode("ascii").rstrip("=")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def hash_secret(secret: str, *, salt: bytes | None = None) -> str:
    """Hash a token or password for the settings (``OKR_UI__TOKEN_HASH=...``).

    Args:
        secret: The token or password.
        salt: A salt (default: 16 random bytes); given only by tests.

    Returns:
        ``scrypt:16384:8:1:<salt>:<hash>``.
    """
    salt = salt if salt is not None else secrets.token_bytes(SALT_BYTES)
    digest = hashlib.scrypt(secret.encode(), salt=salt, n=N, r=R, p=P, dklen=HASH_BYTES)
    return f"{SCHEME}:{N}:{R}:{P}:{_b64(salt)}:{_b64(digest)}"


def verify_secret(secret: str, stored: str) -> bool:
    """Whether ``secret`` matches the hash ``stored`` (constant time; a bad hash: False)."""
    try:
        scheme, n_text, r_text, p_text, salt_text, hash_text = stored.strip().split(":")
        n, r, p = int(n_text), int(r_text), int(p_text)
        salt, expected = _unb64(salt_text), _unb64(hash_text)
    except (ValueError, binascii.Error):
        return False
    if scheme != SCHEME or not (1 < n <= MAX_N) or not (0 < r <= 32) or not (0 < p <= 16):
        return False
    if not expected:
        return False
    try:
        digest = hashlib.scrypt(
            secret.encode(), salt=salt, n=n, r=r, p=p, dklen=len(expected), maxmem=2**27
        )
    except (ValueError, MemoryError):
        return False
    return hmac.compare_digest(digest, expected)


def writes_enabled(ui: UiSettings) -> bool:
    """Whether a token or a user is configured: without either the dashboard is read-only."""
    return ui.token_hash is not None or bool(ui.users)


@dataclass(frozen=True)
class Credentials:
    """What a request presented: a token, or a user name and password."""

    token: str | None = None
    user: str | None = None
    password: str | None = None


def authenticate(ui: UiSettings, credentials: Credentials) -> str | None:
    """The author a write is recorded with, or None when the credentials do not match.

    Args:
        ui: The dashboard's settings (hashes).
        credentials: What the request presented.

    Returns:
        ``"token"`` for the token, the user's name for a user and password; None otherwise.
    """
    token_hash = ui.token_hash
    if (
        credentials.token
        and token_hash is not None
        and verify_secret(credentials.token, token_hash.get_secret_value())
    ):
        return TOKEN_AUTHOR
    if credentials.user and credentials.password is not None and ui.users:
        # Environment variables name users in upper case (OKR_UI__USERS__ALICE) and
        # pydantic-settings may lower them: match the name in either case.
        users = {name.casefold(): (name, value) for name, value in ui.users.items()}
        found = users.get(credentials.user.casefold())
        if found is not None and verify_secret(credentials.password, found[1].get_secret_value()):
            return found[0]
    return None


class CsrfSigner:
    """Makes and checks the CSRF tokens of one process (its key never leaves memory)."""

    def __init__(self, key: bytes | None = None) -> None:
        self._key = key if key is not None else secrets.token_bytes(32)

    def _sign(self, nonce: str) -> str:
        return _b64(hmac.new(self._key, nonce.encode(), hashlib.sha256).digest())

    def new_token(self) -> str:
        """A fresh token: a random nonce and its signature."""
        nonce = secrets.token_urlsafe(18)
        return f"{nonce}.{self._sign(nonce)}"

    def valid(self, token: str | None) -> bool:
        """Whether ``token`` was made by this signer."""
        if not token or token.count(".") != 1:
            return False
        nonce, signature = token.split(".")
        return hmac.compare_digest(self._sign(nonce), signature)

    def check(self, cookie: str | None, field: str | None) -> bool:
        """Whether the form's field repeats the cookie and the token is ours."""
        if not cookie or not field:
            return False
        return hmac.compare_digest(cookie.encode(), field.encode()) and self.valid(cookie)
