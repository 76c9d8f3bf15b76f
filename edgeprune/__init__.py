"""edgeprune: prune a CNN to an exact budget, slim it, export it, and profile it on a target."""

__version__ = "0.1.0"
