"""okr-pipeline: key results that update themselves.

Everything the distribution installs lives under this one import name, so that a user's
own ``flows/`` or ``connectors/`` folder never shadows ours. The repository keeps one
top-level folder per job; ``pyproject.toml`` maps each onto a subpackage of the same name:

- ``okr_core``: the domain, pure (definitions, loader, settings, scoring, alert rules,
  the one redactor, the one ``${...}`` grammar, the one retry policy).
- ``connectors``: metric sources behind one interface, and the contract suite.
- ``okr_store``: persistence (SQLAlchemy models, Alembic migrations, the store).
- ``notify``: alert senders (Apprise channels, records of every alert, event payloads).
- ``run``: one update run, Prefect-free: select → fetch → evaluate → store → alert step.
- ``flows``: the Prefect layer, the only place that imports Prefect.
- ``cli``: the ``okr`` command, its rendering and ``explain``.
- ``demo``: the demo project and its analytics API.

``docs/architecture.md`` draws the dependency rules; ``tests/test_layers.py`` enforces them.
"""

__version__ = "0.1.0"
