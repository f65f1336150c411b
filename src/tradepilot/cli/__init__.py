"""The ``tradepilot`` command line: one module per command group."""
