"""``python -m archsearch``: the same command line as the ``archsearch`` script, for a Python
whose scripts folder is not on PATH."""

import sys

from archsearch.cli import main

sys.exit(main())
