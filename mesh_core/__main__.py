"""`python -m mesh_core` runs the `mesh` command.

Kept so that launch entries an earlier `mesh install` wrote (`python -m mesh_core mcp`)
still start the same thing. It is the one place the core reaches up to the CLI layer,
and the import-linter contract names it as that exception.
"""

import sys

from mesh_cli.entry import main

sys.exit(main())
