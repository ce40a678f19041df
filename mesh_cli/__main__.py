"""`python -m mesh_cli` is the `mesh` command."""

import sys

from .cli import main

sys.exit(main())
