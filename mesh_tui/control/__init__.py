"""The parts MeshApp is built from, one concern each."""
