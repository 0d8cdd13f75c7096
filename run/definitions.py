"""Load the OKR files with every source checked against the installed connectors and settings."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from okr_pipeline.connectors.base import SourceEnvironment
from okr_pipeline.connectors.registry import check_references, parse_source_config
from okr_pipeline.okr_core.loader import OkrSet, load_okrs
from okr_pipeline.okr_core.settings import Settings
from okr_pipeline.run.formulas import check_formulas
from okr_pipeline.run.manual import check_manual


def source_environment(settings: Settings) -> SourceEnvironment:
    """The connections and secrets that sources may refer to by name."""
    return SourceEnvironment(connections=settings.connections, secrets=settings.secrets)


def load_definitions(settings: Settings) -> OkrSet:
    """Parse and validate the OKR files named by ``settings``.

    Each KR's ``source`` is validated by its connector's config model, and the connections
    and secrets it names must exist in the settings; formula KRs must reference existing
    KRs, without loops; manual KRs must declare their baseline.

    Raises:
        DefinitionError: listing every problem found, with file, place and line.
    """
    env = source_environment(settings)

    def validate_source(raw: Mapping[str, Any]) -> None:
        check_references(parse_source_config(raw), env)

    okr_set = load_okrs(settings.resolved_okr_path(), validate_source=validate_source)
    # Formula KRs reference other KRs (issue 8): checked on the whole set, once it loads.
    check_formulas(okr_set)
    check_manual(okr_set)
    return okr_set
