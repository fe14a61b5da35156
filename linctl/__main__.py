"""`python -m linctl` runs the command line."""

from linctl.cli.app import main

main()
