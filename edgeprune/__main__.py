"""`python -m edgeprune` runs the CLI."""

from edgeprune.cli import main

main(prog_name="edgeprune")
