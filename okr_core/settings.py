"""Settings: the only module that reads the environment.

Sources, highest priority first: keyword arguments to :func:`load_settings`, environment
variables (prefix ``OKR_``, ``__`` between nesting levels), the ``.env`` file in the project
folder, the ``okr.toml`` file in the project folder. Examples::

    OKR_CONNECTIONS__WAREHOUSE__URL=postgresql+psycopg://bob:pw@db/analytics
    OKR_CONNECTIONS__WAREHOUSE__MAX_CONCURRENCY=8
    OKR_SECRETS__GA_TOKEN=...

Secrets are :class:`pydantic.SecretStr` and are unwrapped only where they are used; no
``repr``, log line or error message from this module shows one.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, SecretStr, ValidationError
from pydantic_settings import (
    BaseSettings,
    DotEnvSettingsSource,
    InitSettingsSource,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    TomlConfigSettingsSource,
)

from okr_pipeline.okr_core.errors import ConfigError
from okr_pipeline.okr_core.redaction import mask_url

__all__ = [
    "PREFECT_BLOCK_SCHEME",
    "ConnectionSettings",
    "Settings",
    "UiSettings",
    "load_settings",
    "mask_url",
    "settings_in_blocks",
]

ENV_PREFIX = "OKR_"
NESTED_DELIMITER = "__"
DOTENV_FILE = ".env"
TOML_FILE = "okr.toml"
#: How a connection URL or a secret names a Prefect block instead of holding the value.
PREFECT_BLOCK_SCHEME = "prefect-block://"


class ConnectionSettings(BaseModel):
    """A named connection that metric sources refer to by name."""

    # hide_input_in_errors: a ValidationError must never carry a URL with a password.
    model_config = ConfigDict(extra="forbid", hide_input_in_errors=True)

    url: SecretStr = Field(description="SQLAlchemy URL or HTTP base URL.")
    max_concurrency: int = Field(
        4, ge=1, le=256, description="Queries or requests at once on this connection."
    )
    timeout_seconds: float = Field(30.0, gt=0, description="Statement or request timeout.")
    rate_limit_per_second: float | None = Field(
        None,
        gt=0,
        description="At most this many queries or requests a second on this connection, over "
        "every run and worker (APIs with quotas); unset: no rate limit.",
    )
    owner: str | None = Field(
        None, description="Who owns this connection (e.g. data-team); told when it fails."
    )
    headers: dict[str, SecretStr] = Field(
        default_factory=dict, description="HTTP only: headers sent with every request."
    )

    def __repr__(self) -> str:
        # The default repr already masks SecretStr; we also show the masked URL because
        # the host and database are what a reader needs when debugging.
        return (
            f"ConnectionSettings(url={mask_url(self.url.get_secret_value())!r}, "
            f"max_concurrency={self.max_concurrency}, timeout_seconds={self.timeout_seconds}, "
            f"rate_limit_per_second={self.rate_limit_per_second}, "
            f"headers={sorted(self.headers)!r})"
        )


class UiSettings(BaseModel):
    """The dashboard (``okr ui``): who may write check-ins. Read-only while both are empty.

    Only hashes are kept (``okr ui hash`` makes one), so a leaked ``.env`` or ``okr.toml``
    does not hand out the token or a password.
    """

    model_config = ConfigDict(extra="forbid", hide_input_in_errors=True)

    token_hash: SecretStr | None = Field(
        None, description="Hash of the token that allows check-ins (from `okr ui hash`)."
    )
    users: dict[str, SecretStr] = Field(
        default_factory=dict,
        description="User name -> hash of that user's password (from `okr ui hash`).",
    )
    host: str = Field("127.0.0.1", description="Address `okr ui` and `okr serve` listen on.")
    port: int = Field(8400, ge=0, le=65535, description="Port of the dashboard; 0: any free one.")


class ShardSettings(BaseModel):
    """Splitting a run into shards, each a flow run of its own on a Prefect work pool."""

    model_config = ConfigDict(extra="forbid")

    count: int = Field(
        1, ge=1, le=1024, description="Shards a run is split into; 1: the run is not split."
    )
    work_pool: str | None = Field(
        None, description="Prefect work pool whose workers run the shards (prefect.yaml)."
    )


class Settings(BaseSettings):
    """All settings of okr-pipeline. Build it with :func:`load_settings`."""

    model_config = SettingsConfigDict(
        env_prefix=ENV_PREFIX,
        env_nested_delimiter=NESTED_DELIMITER,
        extra="forbid",
        hide_input_in_errors=True,
    )

    project_dir: Path = Field(Path("."), description="Folder of okr.toml, .env and okrs/.")
    okr_path: Path = Field(Path("okrs"), description="OKR files, relative to project_dir.")
    store_url: SecretStr | None = Field(
        None, description="SQLAlchemy URL of the store; default sqlite in <project_dir>/.okr."
    )
    connections: dict[str, ConnectionSettings] = Field(default_factory=dict)
    secrets: dict[str, SecretStr] = Field(default_factory=dict)
    max_concurrency: int = Field(16, ge=1, le=1024, description="Sources running at once.")
    alerts_path: Path = Field(
        Path("alerts.yaml"), description="Alert routing file, relative to project_dir."
    )
    stale_after_periods: float = Field(
        3.0,
        gt=0,
        le=1000,
        description="A KR is stale when its last good value is older than this many periods "
        "of its schedule.",
    )

    ui: UiSettings = Field(default_factory=UiSettings)
    shards: ShardSettings = Field(default_factory=ShardSettings)
    report_url: str | None = Field(
        None,
        description="Where people open the dashboard or report (e.g. https://okr.example.com); "
        "alert messages and Prefect artifacts link to it.",
    )
    report_dir: Path | None = Field(
        None,
        description="Write the HTML report into this folder after each run (relative to "
        "project_dir); unset: no report is written by runs.",
    )

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        """Read init kwargs, then the environment, then ``.env``, then ``okr.toml``."""
        # The .env and okr.toml files live in the project folder, which is itself a
        # setting, so their paths are only known per call, not in model_config.
        project_dir = _project_dir_from(init_settings)
        dotenv = DotEnvSettingsSource(settings_cls, env_file=project_dir / DOTENV_FILE)
        toml = TomlConfigSettingsSource(settings_cls, toml_file=project_dir / TOML_FILE)
        return (init_settings, env_settings, dotenv, toml)

    def resolved_store_url(self) -> str:
        """The store's SQLAlchemy URL, secret included; use only to connect.

        Returns:
            ``store_url`` if set, else ``sqlite:///<project_dir>/.okr/okr.db`` (absolute).
        """
        if self.store_url is not None:
            return self.store_url.get_secret_value()
        db_path = (self.project_dir / ".okr" / "okr.db").resolve()
        return f"sqlite:///{db_path.as_posix()}"

    def resolved_okr_path(self) -> Path:
        """The folder (or file) of OKR definitions, resolved against ``project_dir``."""
        return (self.project_dir / self.okr_path).resolve()

    def resolved_alerts_path(self) -> Path:
        """The alert routing file, resolved against ``project_dir``."""
        return (self.project_dir / self.alerts_path).resolve()


def settings_in_blocks(settings: Settings) -> list[str]:
    """The settings whose value names a Prefect block (``prefect-block://...``).

    Args:
        settings: The settings as loaded.

    Returns:
        Their environment names, e.g. ``OKR_CONNECTIONS__WAREHOUSE__URL``; empty when none.
    """
    return [
        f"{ENV_PREFIX}CONNECTIONS{NESTED_DELIMITER}{name.upper()}{NESTED_DELIMITER}URL"
        for name, connection in settings.connections.items()
        if connection.url.get_secret_value().startswith(PREFECT_BLOCK_SCHEME)
    ] + [
        f"{ENV_PREFIX}SECRETS{NESTED_DELIMITER}{name.upper()}"
        for name, secret in settings.secrets.items()
        if secret.get_secret_value().startswith(PREFECT_BLOCK_SCHEME)
    ]


def _project_dir_from(init_settings: PydanticBaseSettingsSource) -> Path:
    if isinstance(init_settings, InitSettingsSource):
        value = init_settings.init_kwargs.get("project_dir")
        if value is not None:
            return Path(value)
    return Path(os.environ.get(f"{ENV_PREFIX}PROJECT_DIR", "."))


def load_settings(project_dir: Path | None = None, **overrides: Any) -> Settings:
    """Load settings from keyword overrides, the environment, ``.env`` and ``okr.toml``.

    Args:
        project_dir: Folder holding ``okr.toml``, ``.env`` and the OKR files; default
            ``$OKR_PROJECT_DIR`` or the current folder. Made absolute.
        **overrides: Setting values that win over every other source.

    Returns:
        The validated settings.

    Raises:
        ConfigError: A setting is invalid; the one-line message names each bad setting
            (as its environment variable) and never shows its value.
    """
    if project_dir is None:
        project_dir = Path(os.environ.get(f"{ENV_PREFIX}PROJECT_DIR", "."))
    overrides["project_dir"] = Path(project_dir).resolve()
    try:
        return Settings(**overrides)
    except ValidationError as exc:
        # Inputs are hidden (hide_input_in_errors), so chaining cannot leak a secret.
        raise ConfigError(_settings_error_message(exc)) from exc
    except (OSError, ValueError) as exc:
        # A broken okr.toml (TOMLDecodeError is a ValueError) or an unreadable .env.
        raise ConfigError(
            f"Cannot read settings in {overrides['project_dir']}: {type(exc).__name__}: {exc}"
        ) from exc


def _settings_error_message(exc: ValidationError) -> str:
    parts = []
    for error in exc.errors(include_input=False, include_url=False):
        loc = [str(part) for part in error["loc"]]
        env_name = ENV_PREFIX + NESTED_DELIMITER.join(part.upper() for part in loc)
        toml_name = ".".join(loc)
        message = error["msg"]
        if error["type"] == "missing":
            message = "missing"
        elif error["type"] == "extra_forbidden":
            message = "unknown setting"
        parts.append(f"{env_name} ({toml_name} in {TOML_FILE}): {message}")
    return "Invalid settings: " + "; ".join(parts)
