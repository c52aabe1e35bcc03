"""The `litepose` command line: thin click commands over converter/ and python_ref/.

TensorFlow is imported lazily inside the commands that need it, so `--help`, `predict --model` and
`evaluate` start fast and run without it. Status goes to stderr, data to files or stdout.
Exit codes: 0 ok, 1 error or below threshold, 2 usage.
"""
from __future__ import annotations

import os
import sys

import click

from python_ref import __version__
from python_ref.errors import LitePoseError


class _Group(click.Group):
    """Turn LitePoseError (and plain OS errors on user files) into a one-line `Error: ...`."""

    def invoke(self, ctx):
        try:
            return super().invoke(ctx)
        except LitePoseError as exc:
            raise click.ClickException(str(exc)) from None
        except KeyboardInterrupt:
            click.echo("Interrupted", err=True)
            sys.exit(130)


@click.group(cls=_Group, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="litepose")
def main():
    """LitePose Edge: convert LitePose checkpoints to LiteRT, check them, benchmark them."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


# Commands are registered below, one import per command module.
