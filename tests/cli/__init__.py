"""Tests of the command line: in-process through `runner.shredstore`, and a few real processes."""
