"""Message engines: where topic messages live and how they are numbered."""
