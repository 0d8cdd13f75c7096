"""The ``okr`` command: its commands, the terminal rendering and ``okr explain``."""
