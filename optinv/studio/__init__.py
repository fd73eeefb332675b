"""optinv studio: a local web page over the same engine as the CLI.

Paint a colour constraint with a brush, run invert / pulse / paint and watch them converge,
and edit a result with sliders. The server (:mod:`optinv.studio.app`) is a small Starlette
app with one static page (no CDN, no external fonts: it works with no internet at all); jobs
run one at a time on a worker thread (:mod:`optinv.studio.queue`) through :mod:`optinv.engine.jobs`.
"""

from __future__ import annotations

__all__ = ["create_app", "serve"]


def __getattr__(name: str):  # the app needs the [studio] extra; importing the package does not
    if name in __all__:
        from optinv.studio import app

        return getattr(app, name)
    raise AttributeError(name)
