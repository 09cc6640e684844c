"""`python -m portlens` runs the same command line as the `portlens` script."""

import sys

from portlens.cli import main

sys.exit(main())
