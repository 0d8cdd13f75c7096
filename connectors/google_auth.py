"""Google service-account sign-in: a signed JWT exchanged for an access token, cached.

The flow documented at
https://developers.google.com/identity/protocols/oauth2/service-account#httprest: a JWT
(RS256; ``iss`` the key's ``client_email``, ``scope``, ``aud`` the key's ``token_uri``,
``iat`` and ``exp`` at most an hour later) signed with the key's private key is posted to
``token_uri`` as ``grant_type=urn:ietf:params:oauth:grant-type:jwt-bearer``; the answer's
``access_token`` is valid for ``expires_in`` seconds. Tokens are cached per key and scope
until shortly before they expire. The private key, the JWT and the token are secrets:
every message they could reach is redacted.
"""

from __future__ import annotations

import base64
import hashlib
import json
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa

from okr_pipeline.connectors.api_client import ApiCall, ApiClient
from okr_pipeline.connectors.errors import FatalSourceError
from okr_pipeline.okr_core.redaction import Redactor, truncate

__all__ = ["JWT_BEARER", "ServiceAccountKey", "TokenCache"]

JWT_BEARER = "urn:ietf:params:oauth:grant-type:jwt-bearer"
# Google accepts assertions valid for at most an hour.
_LIFETIME_SECONDS = 3600
# A token this close to its end is renewed, so a slow call never carries an expired one.
_RENEW_BEFORE_SECONDS = 300


@dataclass(frozen=True)
class ServiceAccountKey:
    """The parts of a service-account JSON key the sign-in needs.

    Attributes:
        client_email: The account (the JWT's issuer).
        token_uri: Where the JWT is exchanged for a token.
        private_key: The PEM private key (never shown).
        private_key_id: The key's id (the JWT header's ``kid``), if the key names one.
    """

    client_email: str
    token_uri: str
    private_key: str = field(repr=False)
    private_key_id: str | None = None

    @classmethod
    def parse(cls, text: str) -> ServiceAccountKey:
        """Read a service-account key as downloaded from the Google Cloud console.

        Args:
            text: The key file's JSON.

        Returns:
            The key.

        Raises:
            ValueError: Not such a key; the message never quotes the text.
        """
        try:
            data = json.loads(text)
        except ValueError:
            raise ValueError("the secret is not JSON (a service-account key file)") from None
        if not isinstance(data, dict):
            raise ValueError("the secret is not a JSON object (a service-account key file)")
        if data.get("type", "service_account") != "service_account":
            raise ValueError(f"the key's type is {data.get('type')!r}, not 'service_account'")
        missing = [
            name
            for name in ("client_email", "private_key", "token_uri")
            if not isinstance(data.get(name), str) or not data[name]
        ]
        if missing:
            raise ValueError(f"the service-account key has no {', '.join(missing)}")
        key_id = data.get("private_key_id")
        return cls(
            client_email=data["client_email"],
            token_uri=data["token_uri"],
            private_key=data["private_key"],
            private_key_id=key_id if isinstance(key_id, str) and key_id else None,
        )

    def assertion(self, scope: str, now: float) -> str:
        """The signed JWT asking for a token of ``scope``.

        Args:
            scope: Space-separated OAuth scopes.
            now: Unix time of issue.

        Returns:
            The compact JWT.

        Raises:
            ValueError: The private key cannot be read or is not RSA (not quoted).
        """
        try:
            private = serialization.load_pem_private_key(self.private_key.encode(), None)
        except (ValueError, TypeError, UnsupportedAlgorithm):
            raise ValueError("the key's private_key is not a readable PEM private key") from None
        if not isinstance(private, rsa.RSAPrivateKey):
            raise ValueError("the key's private_key is not an RSA key")
        header: dict[str, str] = {"alg": "RS256", "typ": "JWT"}
        if self.private_key_id:
            header["kid"] = self.private_key_id
        issued = int(now)
        claims = {
            "iss": self.client_email,
            "scope": scope,
            "aud": self.token_uri,
            "iat": issued,
            "exp": issued + _LIFETIME_SECONDS,
        }
        signing_input = f"{_b64(_json(header))}.{_b64(_json(claims))}"
        signature = private.sign(signing_input.encode(), padding.PKCS1v15(), hashes.SHA256())
        return f"{signing_input}.{_b64(signature)}"


@dataclass
class _Cached:
    token: str = ""
    renew_at: float = 0.0
    lock: threading.Lock = field(default_factory=threading.Lock)


class TokenCache:
    """Access tokens per key and scope, shared by the threads of a run.

    Args:
        client: Makes the token calls (deadline, retries, size cap, status handling).
        clock: Unix time now; the JWT's ``iat`` and the cache's expiry use it.
    """

    def __init__(self, client: ApiClient, clock: Callable[[], float] = time.time) -> None:
        self._client = client
        self._clock = clock
        self._lock = threading.Lock()
        self._tokens: dict[str, _Cached] = {}

    def token(self, key_text: str, scope: str, call: ApiCall, where: str) -> str:
        """A valid access token for the key, fetched when none is cached or it is ending.

        Args:
            key_text: The service-account key JSON (a secret).
            scope: The OAuth scope asked for.
            call: Timeout, retries, backoff and size cap of the token call (its method,
                URL and body are replaced).
            where: ``"KR o/k: <type> source"``, the start of every message.

        Returns:
            The access token.

        Raises:
            FatalSourceError: The key is unusable, the token endpoint refused it (4xx), or
                answered without a token.
            RetriableSourceError: The token endpoint failed transiently after all retries.
        """
        slot = self._slot(_slot_name(key_text, scope))
        # One thread per key fetches; the others wait for its token instead of asking too.
        with slot.lock:
            if slot.token and self._clock() < slot.renew_at:
                return slot.token
            slot.token, slot.renew_at = self._fetch(key_text, scope, call, where)
            return slot.token

    def forget(self, key_text: str, scope: str) -> None:
        """Drop the key's cached token, refused before its end, so the next fetch signs in.

        Args:
            key_text: The service-account key JSON.
            scope: The OAuth scope it was asked for.
        """
        with self._lock:
            self._tokens.pop(_slot_name(key_text, scope), None)

    def _slot(self, name: str) -> _Cached:
        with self._lock:
            return self._tokens.setdefault(name, _Cached())

    def _fetch(self, key_text: str, scope: str, call: ApiCall, where: str) -> tuple[str, float]:
        redact = Redactor([key_text])
        try:
            key = ServiceAccountKey.parse(key_text)
            redact = Redactor([key_text, key.private_key, *_pem_lines(key.private_key)])
            now = self._clock()
            jwt = key.assertion(scope, now)
        except ValueError as exc:
            raise FatalSourceError(f"{where}: {redact(str(exc))}") from None
        redact = Redactor([key_text, key.private_key, *_pem_lines(key.private_key), jwt])
        token_call = ApiCall(
            method="POST",
            url=key.token_uri,
            form={"grant_type": JWT_BEARER, "assertion": jwt},
            headers={"Accept": "application/json"},
            timeout=call.timeout,
            max_bytes=min(call.max_bytes, 1024 * 1024),
            retries=call.retries,
            backoff_seconds=call.backoff_seconds,
        )
        where = f"{where} POST {redact(key.token_uri.split('?', 1)[0])} (sign-in)"
        answer: Any = self._client.send_json(token_call, where=where, redact=redact)
        token = answer.get("access_token") if isinstance(answer, dict) else None
        if not isinstance(token, str) or not token:
            keys = ", ".join(sorted(map(str, answer))[:20]) if isinstance(answer, dict) else ""
            raise FatalSourceError(
                f"{where}: the token endpoint answered without an access_token "
                f"(keys: {truncate(redact(keys), 200) or 'none'})"
            )
        lifetime = answer.get("expires_in")
        seconds = float(lifetime) if _is_number(lifetime) else float(_LIFETIME_SECONDS)
        return token, now + max(seconds - _RENEW_BEFORE_SECONDS, 0.0)


def _slot_name(key_text: str, scope: str) -> str:
    # A digest: the cache's keys are not the secret itself.
    return hashlib.sha256(f"{scope}\n{key_text}".encode()).hexdigest()


def _is_number(value: Any) -> bool:
    try:
        float(value)
    except (TypeError, ValueError):
        return False
    return not isinstance(value, bool)


def _pem_lines(pem: str) -> list[str]:
    # An answer could quote a fragment of the key; each base64 line is hidden on its own.
    return [line for line in pem.splitlines() if len(line) >= 16 and "-----" not in line]


def _json(value: Any) -> bytes:
    return json.dumps(value, separators=(",", ":")).encode()


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")
