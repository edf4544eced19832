"""`python -m taskgate ...` is `taskgate ...`."""

import sys

from taskgate.server.cli import main

sys.exit(main())
