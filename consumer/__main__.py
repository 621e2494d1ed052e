"""`python -m consumer` entry point."""

import sys

from consumer.cli import main

sys.exit(main())
