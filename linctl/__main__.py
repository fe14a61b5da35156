"""`python -m linctl` runs the command line."""

from linctl.cli.start import main

main()
