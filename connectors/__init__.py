"""Metric sources for okr-pipeline: SQL and HTTP connectors behind one small interface.

A connector turns a validated source declaration plus an evaluation context into one
number (or ``None`` for "no data"). See ``connectors.base`` for the interface and
``connectors.registry`` for how types are found (entry points, group ``okr.connectors``).

This package imports ``okr_core`` only: never ``prefect``, ``okr_store`` or ``flows``.
"""
