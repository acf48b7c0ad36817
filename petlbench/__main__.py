"""``python -m petlbench``: the same command line as ``petlbench``."""

from petlbench.cli import main

main()
