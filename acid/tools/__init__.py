"""Command-line tools: ``python -m acid.tools.replay TRACE URL``."""
