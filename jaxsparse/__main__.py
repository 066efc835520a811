"""``python -m jaxsparse``."""

import sys

from jaxsparse.cli import main

sys.exit(main())
