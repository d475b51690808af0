"""``python -m shredstore.cli``: the same as the `shredstore` console script."""

from shredstore.cli import main

main()
