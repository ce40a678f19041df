"""`python -m mesh_core` is the `mesh` command."""

import sys

from .cli import main

sys.exit(main())
