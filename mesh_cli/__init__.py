"""The `mesh` command: parse arguments, call the core, render the answer (rich lives here)."""
