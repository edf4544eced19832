"""`python -m taskgate.server ...` (and `python -m server ...` from a checkout) is
`taskgate serve ...`."""

import sys

from taskgate.server.cli import main

sys.exit(main())
