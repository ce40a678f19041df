"""The panes of the main screen, one widget a file."""
