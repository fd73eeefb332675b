"""``optinv studio``: start the local web page and print its URL."""

from __future__ import annotations

import click

from optinv.cli.common import handle_errors, to_flags
from optinv.errors import OptinvError


@click.command()
@click.option("--model", "-m", default=None, help="generator file or shipped model name (default: embedded synthfaces256)")
@click.option("--port", "-p", type=int, default=8765, show_default=True, help="port (0: any free port)")
@click.option("--host", default="127.0.0.1", show_default=True,
              help="address to listen on; 0.0.0.0 lets every machine that can reach this one use the studio")
@click.option("--device", default="auto", show_default=True, help="auto (cuda > mps > cpu), cpu, cuda, mps")
@handle_errors
def studio(model, port, host, device):
    """A local web page: paint constraints, watch the optimiser converge, edit with sliders."""
    try:
        from optinv.studio.app import is_loopback, serve
    except ImportError as e:
        raise OptinvError(f"the studio needs its extra ({e.name} is missing): pip install -e '.[studio]'") from None

    def announce(url: str) -> None:
        click.echo(f"optinv studio: {url}  (Ctrl-C stops it)")
        if not is_loopback(host):
            click.echo(f"listening on {host}: anyone who can reach this machine can use it", err=True)

    serve(model, host=host, port=port, device=device, wording=to_flags, announce=announce)
