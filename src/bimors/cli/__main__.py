"""``python -m bimors.cli``: the ``bimors`` command, for launchers that take a module
(``accelerate launch -m bimors.cli caption ...``)."""

import sys

from bimors.cli import main

sys.exit(main())
