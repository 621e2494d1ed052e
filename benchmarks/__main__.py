"""`python -m benchmarks` (from the repository root): see benchmarks/cli.py."""

import sys

from benchmarks.cli import main

sys.exit(main())
