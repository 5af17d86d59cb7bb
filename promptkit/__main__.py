"""`python -m promptkit` runs the command line."""

from .cli import main

main()
