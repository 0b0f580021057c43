"""``python -m wear``: the same as the ``wear`` console script."""

from wear.cli import main

main()
