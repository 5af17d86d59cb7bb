"""`python -m promptkit.cli` runs the command line."""

from . import main

main()
