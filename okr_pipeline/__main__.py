"""``python -m okr_pipeline``: the ``okr`` command."""

from okr_pipeline.cli.main import main

main()
