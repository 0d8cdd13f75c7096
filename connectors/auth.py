"""Authentication schemes of the HTTP source; each names its secrets, never holds them."""

from __future__ import annotations

import base64
from typing import Annotated, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, model_validator

from okr_pipeline.okr_core.names import SECRET_NAME_RULE, secret_name_of

__all__ = ["ApiKeyAuth", "AuthConfig", "BasicAuth", "BearerAuth", "apply_auth"]


def _secret_name(name: str) -> str:
    # The names ${secret:NAME} takes: one grammar for every place a secret is named.
    if secret_name_of(f"secret:{name}") != name:
        raise ValueError(f"{name!r} is not a secret name: {SECRET_NAME_RULE}")
    return name


SecretName = Annotated[str, AfterValidator(_secret_name)]
_SECRET_NAME = Field(
    min_length=1,
    description=f"Name of a secret in the settings (OKR_SECRETS__<NAME>): {SECRET_NAME_RULE}.",
)


class _Auth(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    def secret_names(self) -> set[str]:
        """Names of the secrets this scheme uses.

        Returns:
            The secret names.
        """
        raise NotImplementedError


class BearerAuth(_Auth):
    """``Authorization: Bearer <secret>``."""

    type: Literal["bearer"] = Field(description="Bearer token in the Authorization header.")
    secret: SecretName = _SECRET_NAME

    def secret_names(self) -> set[str]:  # noqa: D102 - documented on the base
        return {self.secret}


class BasicAuth(_Auth):
    """HTTP Basic authentication with a user name and a password secret."""

    type: Literal["basic"] = Field(description="HTTP Basic authentication.")
    username: str = Field(min_length=1, description="User name (not a secret).")
    password_secret: SecretName = _SECRET_NAME

    def secret_names(self) -> set[str]:  # noqa: D102 - documented on the base
        return {self.password_secret}


class ApiKeyAuth(_Auth):
    """An API key sent in a header (default ``X-API-Key``) or a query parameter."""

    type: Literal["api_key"] = Field(description="API key in a header or query parameter.")
    secret: SecretName = _SECRET_NAME
    header: str | None = Field(
        None, min_length=1, description="Header carrying the key; default X-API-Key."
    )
    query: str | None = Field(None, min_length=1, description="Query parameter carrying the key.")

    @model_validator(mode="after")
    def _one_place(self) -> ApiKeyAuth:
        if self.header is not None and self.query is not None:
            raise ValueError("set either 'header' or 'query' for an api_key, not both")
        return self

    def secret_names(self) -> set[str]:  # noqa: D102 - documented on the base
        return {self.secret}


AuthConfig = Annotated[BearerAuth | BasicAuth | ApiKeyAuth, Field(discriminator="type")]


def apply_auth(
    auth: BearerAuth | BasicAuth | ApiKeyAuth | None,
    secrets: dict[str, str],
    headers: dict[str, str],
    params: dict[str, str],
) -> list[str]:
    """Add the credentials of ``auth`` to the outgoing headers or query parameters.

    Args:
        auth: The configured scheme, or None.
        secrets: Secret values by name, unwrapped.
        headers: Outgoing headers, updated in place.
        params: Outgoing query parameters, updated in place.

    Returns:
        Extra strings to redact from messages (the encoded form of Basic credentials).
    """
    if auth is None:
        return []
    if isinstance(auth, BearerAuth):
        headers["Authorization"] = f"Bearer {secrets[auth.secret]}"
        return []
    if isinstance(auth, BasicAuth):
        pair = f"{auth.username}:{secrets[auth.password_secret]}".encode()
        token = base64.b64encode(pair).decode("ascii")
        headers["Authorization"] = f"Basic {token}"
        return [token]
    if auth.query is not None:
        params[auth.query] = secrets[auth.secret]
    else:
        headers[auth.header or "X-API-Key"] = secrets[auth.secret]
    return []
