"""Settings: sources and their priority, masking, and secrets kept out of repr and errors."""

from __future__ import annotations

from pathlib import Path

import pytest

from okr_pipeline.okr_core.errors import ConfigError
from okr_pipeline.okr_core.settings import Settings, load_settings, mask_url

SECRET = "s3cr3t-Pa55"


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """Run each test without the caller's OKR_* settings (CI sets some for other tests)."""
    import os

    for name in list(os.environ):
        if name.upper().startswith("OKR_"):
            monkeypatch.delenv(name)


def test_defaults(tmp_path: Path) -> None:
    settings = load_settings(tmp_path)
    assert settings.project_dir == tmp_path.resolve()
    assert settings.connections == {}
    assert settings.max_concurrency == 16
    assert settings.resolved_store_url() == f"sqlite:///{tmp_path.resolve()}/.okr/okr.db"
    assert settings.resolved_store_url().startswith("sqlite:////")  # absolute path
    assert settings.resolved_okr_path() == tmp_path.resolve() / "okrs"


def test_connection_from_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    url = f"postgresql+psycopg://bob:{SECRET}@db.internal:5432/analytics"
    monkeypatch.setenv("OKR_CONNECTIONS__WAREHOUSE__URL", url)
    monkeypatch.setenv("OKR_CONNECTIONS__WAREHOUSE__MAX_CONCURRENCY", "8")
    monkeypatch.setenv("OKR_SECRETS__GA_TOKEN", SECRET)
    settings = load_settings(tmp_path)
    warehouse = settings.connections["warehouse"]
    assert warehouse.url.get_secret_value() == url
    assert warehouse.max_concurrency == 8
    assert warehouse.timeout_seconds == 30.0
    assert settings.secrets["ga_token"].get_secret_value() == SECRET
    assert SECRET not in repr(settings)
    assert SECRET not in str(settings)
    assert "bob:***@db.internal" in repr(settings)


def test_dotenv_and_toml_priority(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "okr.toml").write_text(
        'max_concurrency = 3\nokr_path = "defs"\n'
        '[connections.analytics]\nurl = "https://api.example.com"\ntimeout_seconds = 5\n'
        "[secrets]\nfrom_toml = 'x'\n"
    )
    (tmp_path / ".env").write_text("OKR_MAX_CONCURRENCY=5\nOKR_SECRETS__FROM_DOTENV=y\n")
    settings = load_settings(tmp_path)
    assert settings.max_concurrency == 5  # .env beats okr.toml
    assert settings.okr_path == Path("defs")
    assert settings.connections["analytics"].timeout_seconds == 5
    assert settings.secrets["from_dotenv"].get_secret_value() == "y"

    monkeypatch.setenv("OKR_MAX_CONCURRENCY", "7")
    assert load_settings(tmp_path).max_concurrency == 7  # environment beats .env
    assert load_settings(tmp_path, max_concurrency=9).max_concurrency == 9  # kwargs win


def test_store_url_override(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OKR_STORE_URL", f"postgresql://okr:{SECRET}@pg/okr")
    settings = load_settings(tmp_path)
    assert settings.resolved_store_url() == f"postgresql://okr:{SECRET}@pg/okr"
    assert SECRET not in repr(settings)


@pytest.mark.parametrize(
    ("env", "expected_name"),
    [
        (
            {"OKR_CONNECTIONS__WAREHOUSE__MAX_CONCURRENCY": "0"},
            "OKR_CONNECTIONS__WAREHOUSE__MAX_CONCURRENCY",
        ),
        (
            {"OKR_CONNECTIONS__WAREHOUSE__MAX_CONCURRENCY": "999"},
            "OKR_CONNECTIONS__WAREHOUSE__MAX_CONCURRENCY",
        ),
        (
            {"OKR_CONNECTIONS__WAREHOUSE__TIMEOUT_SECONDS": "-1"},
            "OKR_CONNECTIONS__WAREHOUSE__TIMEOUT_SECONDS",
        ),
        ({"OKR_MAX_CONCURRENCY": "many"}, "OKR_MAX_CONCURRENCY"),
    ],
)
def test_invalid_setting_names_the_variable(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, env: dict[str, str], expected_name: str
) -> None:
    monkeypatch.setenv("OKR_CONNECTIONS__WAREHOUSE__URL", f"postgresql://u:{SECRET}@h/db")
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    with pytest.raises(ConfigError) as info:
        load_settings(tmp_path)
    message = str(info.value)
    assert expected_name in message
    assert "\n" not in message
    assert SECRET not in message
    assert SECRET not in str(info.value.__cause__)


def test_missing_connection_url(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OKR_CONNECTIONS__WAREHOUSE__TIMEOUT_SECONDS", "3")
    with pytest.raises(ConfigError, match=r"OKR_CONNECTIONS__WAREHOUSE__URL.*missing"):
        load_settings(tmp_path)


def test_secret_with_invalid_neighbour_never_echoed(tmp_path: Path) -> None:
    (tmp_path / "okr.toml").write_text(
        f'[connections.w]\nurl = "mysql://a:{SECRET}@h/d"\nheaders = {{Authorization = 5}}\n'
    )
    with pytest.raises(ConfigError) as info:
        load_settings(tmp_path)
    assert "OKR_CONNECTIONS__W__HEADERS__AUTHORIZATION" in str(info.value)
    assert SECRET not in str(info.value) and SECRET not in str(info.value.__cause__)


def test_broken_toml_is_config_error(tmp_path: Path) -> None:
    (tmp_path / "okr.toml").write_text("max_concurrency = = 3\n")
    with pytest.raises(ConfigError, match="Cannot read settings"):
        load_settings(tmp_path)


def test_unknown_toml_key(tmp_path: Path) -> None:
    (tmp_path / "okr.toml").write_text("max_concurency = 3\n")
    with pytest.raises(ConfigError, match=r"OKR_MAX_CONCURENCY.*unknown setting"):
        load_settings(tmp_path)


def test_settings_is_pydantic_settings() -> None:
    assert Settings.model_config["env_prefix"] == "OKR_"
    assert Settings.model_config["env_nested_delimiter"] == "__"


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("postgresql://bob:pw@host/db", "postgresql://bob:***@host/db"),
        ("postgresql+psycopg://bob:p@ss:w/rd@host:5432/db", None),
        (
            "mysql+pymysql://root:xyz@127.0.0.1:3306/test?charset=utf8",
            "mysql+pymysql://root:***@127.0.0.1:3306/test?charset=utf8",
        ),
        ("redis://:only-pw@cache:6379/0", "redis://:***@cache:6379/0"),
        ("https://user:tok@api.example.com/v1?x=1", "https://user:***@api.example.com/v1?x=1"),
        (
            "https://api.example.com/v1?api_key=abc123&x=1",
            "https://api.example.com/v1?api_key=***&x=1",
        ),
        (
            "https://api.example.com:8443/a?email=a@b.com",
            "https://api.example.com:8443/a?email=a@b.com",
        ),
        ("sqlite:////tmp/okr.db", "sqlite:////tmp/okr.db"),
        ("postgresql://bob@host/db", "postgresql://bob@host/db"),
    ],
)
def test_mask_url(url: str, expected: str | None) -> None:
    masked = mask_url(url)
    if expected is not None:
        assert masked == expected
    else:
        # A password with '@' or '/' unescaped: no piece of it may survive.
        assert "p@ss" not in masked and "rd@" not in masked
        assert masked.startswith("postgresql+psycopg://bob:***@")
