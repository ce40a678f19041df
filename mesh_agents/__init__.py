"""How agent hosts join the mesh: the MCP server, host hooks, the installer, the Copilot
shim and the demo's simulated agents. May import the MCP SDK (lazily); never a UI."""
