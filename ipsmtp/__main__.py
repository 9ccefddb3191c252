"""`python -m ipsmtp`: the command line."""

from .cli import main

main()
