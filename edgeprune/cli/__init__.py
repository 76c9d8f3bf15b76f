"""The `edgeprune` command line. Each verb lives in its own module; heavy imports happen
inside command bodies so that `edgeprune --help` is instant."""

from __future__ import annotations

import sys

import click

from edgeprune import __version__
from edgeprune.errors import EdgepruneError


class _Group(click.Group):
    """Every command goes through here: OpenVINO telemetry is turned off before any command
    body imports openvino (`edgeprune.runtime.telemetry`), and an EdgepruneError, or an OSError
    on a file the user named (permission denied, disk full, a folder where a file should be),
    is printed as one line (exit 2) instead of a traceback; Ctrl-C is one line too (exit 130)."""

    def invoke(self, ctx: click.Context):
        from edgeprune.runtime.telemetry import disable

        disable()
        try:
            return super().invoke(ctx)
        except EdgepruneError as err:
            click.echo(f"Error: {err}", err=True)
            sys.exit(2)
        except KeyboardInterrupt:  # one line, not OpenVINO's or torch's tracebacks; nothing half-written
            click.echo("\nInterrupted (Ctrl-C): --out keeps its previous result; an interrupted training keeps "
                       "its last epoch checkpoint in .OUT.partial/ (continue with --resume)", err=True)
            sys.exit(130)
        except OSError as err:
            if err.filename is None:  # not about a file: a bug or the machine, keep the traceback
                raise
            where = f"{err.filename}" + (f" -> {err.filename2}" if err.filename2 else "")
            click.echo(f"Error: {where}: {err.strerror or err}", err=True)
            sys.exit(2)


@click.group(cls=_Group, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="edgeprune")
def main() -> None:
    """Prune a CNN to an exact budget, slim it, export it, and profile it on a target."""


def _register() -> None:
    """Add every `edgeprune/cli/<verb>.py` that defines a click ``command``."""
    import importlib
    import pkgutil

    for info in sorted(pkgutil.iter_modules(__path__), key=lambda m: m.name):
        if info.name.startswith("_"):
            continue
        module = importlib.import_module(f"{__name__}.{info.name}")
        command = getattr(module, "command", None)
        if isinstance(command, click.Command):
            main.add_command(command)


_register()
