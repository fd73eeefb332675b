"""`python -m optinv.cli`: the same command as `optinv` (torchrun starts it this way)."""

from optinv.cli import main

if __name__ == "__main__":
    main()
