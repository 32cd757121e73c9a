"""Running a command under enforcement: one module per platform mechanism."""
