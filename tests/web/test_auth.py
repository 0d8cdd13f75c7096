"""Hashes of the write token and passwords, and the CSRF tokens of a process."""

from __future__ import annotations

import pytest
from pydantic import SecretStr

from okr_pipeline.okr_core.settings import UiSettings
from okr_pipeline.web.auth import (
    Credentials,
    CsrfSigner,
    authenticate,
    hash_secret,
    verify_secret,
    writes_enabled,
)

SALT = bytes(range(16))


def test_a_hash_names_its_parameters_and_salt_and_verifies():
    stored = hash_secret("s3cret-token", salt=SALT)
    scheme, n, r, p, salt, digest = stored.split(":")
    assert (scheme, n, r, p) == ("scrypt", "16384", "8", "1")
    assert salt and digest and "$" not in stored  # no shell or Compose expansion
    assert verify_secret("s3cret-token", stored)
    assert not verify_secret("s3cret-tokeN", stored)
    assert not verify_secret("", stored)
    assert hash_secret("s3cret-token") != hash_secret("s3cret-token")  # salted
    assert "s3cret-token" not in stored


@pytest.mark.parametrize(
    "stored",
    [
        "",
        "plain-text-password",
        "scrypt:16384:8:1:AAAA",
        "bcrypt:16384:8:1:AAAA:BBBB",
        "scrypt:abc:8:1:AAAA:BBBB",
        "scrypt:1:8:1:AAAA:BBBB",
        "scrypt:4294967296:8:1:AAAA:BBBB",  # asks for too much work: refused, not computed
        "scrypt:16384:8:1:!!!!:BBBB",
        "scrypt:16384:8:1:AAAA:",
    ],
)
def test_a_malformed_hash_never_matches(stored):
    assert verify_secret("anything", stored) is False


def test_authenticate_token_users_and_nobody():
    ui = UiSettings(
        token_hash=SecretStr(hash_secret("tok", salt=SALT)),
        users={"Alice": SecretStr(hash_secret("pw", salt=SALT))},
    )
    assert writes_enabled(ui) and not writes_enabled(UiSettings())
    assert authenticate(ui, Credentials(token="tok")) == "token"
    assert authenticate(ui, Credentials(user="alice", password="pw")) == "Alice"
    assert authenticate(ui, Credentials(user="Alice", password="nope")) is None
    assert authenticate(ui, Credentials(user="bob", password="pw")) is None
    assert authenticate(ui, Credentials(token="pw")) is None
    assert authenticate(ui, Credentials()) is None
    assert authenticate(UiSettings(), Credentials(token="tok")) is None


def test_csrf_tokens_are_signed_by_their_process():
    signer, other = CsrfSigner(), CsrfSigner()
    token = signer.new_token()
    assert signer.valid(token) and signer.check(token, token)
    assert not other.valid(token)  # another process's key
    assert not signer.check(token, signer.new_token())  # field and cookie differ
    assert not signer.check(None, token) and not signer.check(token, None)
    nonce, signature = token.split(".")
    assert not signer.valid(f"{nonce}x.{signature}")
    for bad in ("", ".", "a.b.c", "no-dot"):
        assert not signer.valid(bad)
