"""The `dqnlab` command line: argument types, the training commands, the viz commands."""
