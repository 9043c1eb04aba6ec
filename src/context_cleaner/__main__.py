"""``python -m context_cleaner`` = ``context-cleaner``."""

import sys

from context_cleaner.cli import main

sys.exit(main())
