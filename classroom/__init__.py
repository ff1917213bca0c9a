"""The composition root: configuration, the `classroom` command, and the wiring of the packages."""
