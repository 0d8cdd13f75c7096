"""``python -m flows``: the ``okr`` command."""

from flows.cli import main

main()
