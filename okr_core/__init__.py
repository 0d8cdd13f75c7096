"""Pure core of okr-pipeline: OKR definitions, settings, errors and scoring math.

Kept light on purpose: importing ``okr_core`` loads nothing heavy, and no module here
imports SQLAlchemy, Prefect or the other packages of the project.
"""

from okr_pipeline.okr_core.errors import ConfigError, DefinitionError, OkrError, Problem

__all__ = ["ConfigError", "DefinitionError", "OkrError", "Problem"]
