"""`python -m btledger` is the `btledger` command."""

from btledger.api.cli import main

main()
