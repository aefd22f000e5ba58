"""`python -m labelloop.cli`: the same as the `labelloop` command."""

from . import main

main()
