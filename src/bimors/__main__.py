"""``python -m bimors`` (and ``accelerate launch -m bimors``) runs the command line."""

import sys

from bimors.cli import main

sys.exit(main())
