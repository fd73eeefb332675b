#!/usr/bin/env python
"""Kept for existing commands: encoder training is `optinv train-encoder` (optinv.run.encoder_training)."""

from optinv.run.encoder_training import main

if __name__ == "__main__":
    main()
