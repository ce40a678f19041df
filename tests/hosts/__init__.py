"""The real-host suite: the four agent CLIs from npm, each against a scripted model."""
