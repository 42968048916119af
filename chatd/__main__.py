"""``python -m chatd`` is ``chatd``."""

import sys

from chatd.cli import main

sys.exit(main())
