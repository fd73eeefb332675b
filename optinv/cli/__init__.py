"""The ``optinv`` command: a thin layer that parses options, calls the engine and says what it wrote.

Every command lives in one module of this package and is attached here, in one list: no module
adds commands to another's group, so nothing depends on the order of registration.
"""

from __future__ import annotations

import click

from optinv.cli import directions, edit, faces, formats, jobs, models, studio
from optinv.cli.common import FLAGS, flag_table, handle_errors, to_flags

__all__ = ["main", "FLAGS", "flag_table", "handle_errors", "to_flags"]


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="optinv")
def main() -> None:
    """Put images into a StyleGAN2 generator: invert, super-resolve (PULSE), paint with colour."""


COMMANDS = (jobs.invert, jobs.pulse, jobs.paint, jobs.encode, jobs.batch_command, jobs.train_encoder, jobs.evaluate,
            models.generate, models.info, models.convert, formats.export,
            edit.edit, edit.interpolate, edit.mix, edit.blend, directions.directions,
            faces.align, faces.paste, studio.studio)
for command in COMMANDS:
    main.add_command(command)
