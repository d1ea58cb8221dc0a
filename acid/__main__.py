"""``python -m acid``: the ``acid`` command line."""

import sys

from acid.cli import main

if __name__ == "__main__":
    sys.exit(main())
