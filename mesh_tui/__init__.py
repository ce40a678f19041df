"""mesh-tui: watch every agent and thread of the mesh, and take part as a person."""
