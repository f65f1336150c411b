"""``python -m tradepilot.cli``."""

from tradepilot.cli.main import main

main()
