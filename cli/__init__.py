"""The ``okr`` command: its commands, the terminal rendering and ``okr explain``."""

import gc

# The collector runs every 700 allocations by default, and importing what a command needs
# (Typer, Rich, pydantic, SQLAlchemy) allocates by the hundred thousand, keeping all of it:
# scanning it again and again cost 'okr status' about 40 ms of its start. main() keeps
# this threshold for the whole command (see there).
gc.set_threshold(max(50_000, gc.get_threshold()[0]), *gc.get_threshold()[1:])
