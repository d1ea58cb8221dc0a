"""The ``acid`` command line (``acid --help``; also ``python -m acid``).

Built on click (parsing, help, exit codes) and rich (tables, progress
bars); see ``docs/cli.md``. The commands use only the public API, so they
work on every engine.
"""

from __future__ import annotations

from acid.cli.main import cli, main

__all__ = ["cli", "main"]
