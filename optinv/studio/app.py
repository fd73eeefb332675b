"""The studio's HTTP server: one static page, a small JSON API and live job updates (Server-Sent Events).

Why Starlette and not Gradio: Gradio's page loads fonts and scripts from CDNs unless patched,
sends usage analytics by default, and its image editor has no per-stroke opacity or a model-
resolution canvas whose alpha is the constraint. A small page canvas does exactly that, and
Starlette + uvicorn are two small pure-Python packages. Every request the page can make is to
this server (the Content-Security-Policy below forbids any other origin).
"""

from __future__ import annotations

import asyncio
import json
import secrets
import signal
import socket
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import uvicorn
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.middleware import Middleware
from starlette.middleware.trustedhost import TrustedHostMiddleware
from starlette.requests import Request
from starlette.responses import FileResponse, JSONResponse, Response, StreamingResponse
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles

from optinv.engine.device import get_model, resolve_device
from optinv.errors import InputImageError, OptinvError
from optinv.engine.generator import Generator
from optinv.studio import schema
from optinv.studio.schema import MAX_DATA_URL, check_body
from optinv.studio.service import Studio
from optinv.studio.wire import MAX_UPLOAD_BYTES, safe_name
from optinv.studio.state import ResultEntry

STATIC = Path(__file__).with_name("static")
MAX_JSON_BYTES = MAX_DATA_URL + 2**20  # a data URL and the fields around it
LOOPBACK = ("127.0.0.1", "localhost", "::1")
HOST_HEADERS = ("127.0.0.1", "localhost", "[::1]")  # how browsers name the loopback in Host (IPv6 in brackets)
SECURITY_HEADERS = {
    "Content-Security-Policy": "default-src 'self'; img-src 'self' data: blob:; connect-src 'self'; "
                               "style-src 'self'; script-src 'self'; font-src 'none'; object-src 'none'; "
                               "base-uri 'none'; form-action 'self'; frame-ancestors 'none'",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-store",
}


# -------------------------------------------------------------------- HTTP
class SecurityHeaders:
    """ASGI middleware: every response says "nothing but this origin" (and is never cached)."""

    def __init__(self, app: Any):
        self.app = app

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return await self.app(scope, receive, send)

        async def send_with_headers(message: dict) -> None:
            if message["type"] == "http.response.start":
                message["headers"] = list(message.get("headers", [])) + [
                    (k.lower().encode(), v.encode()) for k, v in SECURITY_HEADERS.items()]
            await send(message)

        await self.app(scope, receive, send_with_headers)


class Api:
    """The HTTP endpoints: each one parses its request, calls :class:`Studio`, and answers JSON or bytes."""

    def __init__(self, st: Studio):
        self.st = st

    def fail(self, e: BaseException, status: int = 400) -> JSONResponse:
        return JSONResponse({"error": self.st.say(e)}, status_code=status)

    async def json_body(self, request: Request, schema: Any) -> dict[str, Any]:
        """The request's JSON, read up to :data:`MAX_JSON_BYTES` (a larger one is refused before it
        is read, or as soon as it grows past the limit) and checked against ``schema``."""
        if request.headers.get("content-type", "").split(";")[0] != "application/json":
            raise OptinvError("expected a JSON request")  # also keeps other sites' plain form posts out
        limit = f"larger than {MAX_JSON_BYTES // 2**20} MB (the request limit)"
        declared = request.headers.get("content-length", "")
        if declared.isdigit() and int(declared) > MAX_JSON_BYTES:
            raise OptinvError(f"request {limit}")
        raw = bytearray()
        async for chunk in request.stream():
            raw += chunk
            if len(raw) > MAX_JSON_BYTES:
                raise OptinvError(f"request {limit}")
        try:
            body = json.loads(bytes(raw))
        except (ValueError, RecursionError):
            raise OptinvError("malformed JSON request") from None
        return check_body(body, schema)

    def page_job(self, request: Request) -> Any:
        """The job the path names, only for the page that submitted it (``?page=``): another page,
        even on the same machine, can neither watch it, read its results nor cancel it."""
        job = self.st.queue.get(request.path_params["job"])
        page = request.query_params.get("page")
        if job is None or not page or not secrets.compare_digest(str(job.page).encode(), page.encode()):
            return None
        return job

    async def index(self, request: Request) -> Response:
        return FileResponse(STATIC / "index.html")

    async def info(self, request: Request) -> Response:
        return JSONResponse(self.st.info())

    async def sample(self, request: Request) -> Response:
        try:
            return FileResponse(self.st.sample_path(request.path_params["kind"], request.path_params["name"]))
        except OptinvError as e:
            return self.fail(e, 404)

    async def upload(self, request: Request) -> Response:
        q = request.query_params
        name = safe_name(q.get("name", "upload"))
        try:
            if request.headers.get("content-type", "").split(";")[0] != "application/octet-stream":
                raise OptinvError("expected the file's bytes (application/octet-stream)")
            page = self.st.page(q.get("page"))
            data = bytearray()
            async for chunk in request.stream():
                data += chunk
                if len(data) > MAX_UPLOAD_BYTES:
                    raise InputImageError(f"{name}: larger than {MAX_UPLOAD_BYTES // 2**20} MB (the upload limit)")
            return JSONResponse(await run_in_threadpool(self.st.check_upload, page, q.get("purpose", ""), name,
                                                        bytes(data), q.get("align") == "1"))
        except OptinvError as e:
            return self.fail(e)

    async def submit(self, request: Request) -> Response:
        try:
            job = await run_in_threadpool(self.st.submit, await self.json_body(request, schema.JOB))
        except OptinvError as e:
            return self.fail(e)
        return JSONResponse({"id": job.id, "position": self.st.queue.position(job)})

    async def events(self, request: Request) -> Response:
        """The job's state as Server-Sent Events until it finishes; a closed connection cancels it."""
        st, job = self.st, self.page_job(request)
        if job is None:
            return JSONResponse({"error": "no such job"}, status_code=404)

        async def stream():
            seen, shown, quiet_since = -1, None, time.monotonic()
            try:
                while True:
                    if job.version != seen:
                        seen = job.version
                        view = st.job_view(job, preview=job.preview is not shown)
                        shown = job.preview
                        yield f"data: {json.dumps(view)}\n\n"
                        quiet_since = time.monotonic()
                        if job.finished:
                            return
                    elif time.monotonic() - quiet_since > 2:
                        if await request.is_disconnected():
                            return
                        yield ": still here\n\n"
                        quiet_since = time.monotonic()
                    await asyncio.sleep(0.03)
            finally:  # the page went away (tab closed, reload): its job is of no use to anyone
                if not job.finished:
                    st.queue.cancel(job.id)

        return StreamingResponse(stream(), media_type="text/event-stream")

    async def cancel(self, request: Request) -> Response:
        job = self.page_job(request)
        if job is None:
            return JSONResponse({"cancelled": False}, status_code=404)
        return JSONResponse({"cancelled": self.st.queue.cancel(job.id)})

    async def download(self, request: Request) -> Response:
        p = request.path_params
        try:
            entry = self.st.page(request.query_params.get("page")).get(p["id"], ResultEntry)
        except OptinvError as e:
            return self.fail(e, 404)
        files = {"image": (".png", "image/png"), "compare": (".compare.png", "image/png"),
                 "latent": (".latent.pt", "application/octet-stream")}
        if entry is None or p["kind"] not in files:
            return JSONResponse({"error": "no such result"}, status_code=404)
        suffix, media = files[p["kind"]]
        return Response(getattr(entry, p["kind"]), media_type=media,
                        headers={"Content-Disposition": f'attachment; filename="{entry.name}{suffix}"'})

    async def seed(self, request: Request) -> Response:
        try:
            body = await self.json_body(request, schema.SEED)
            page = self.st.page(body.get("page"))
            return JSONResponse(await run_in_threadpool(self.st.seed_latent, page, body.get("seed"),
                                                        body.get("truncation", 0.7)))
        except OptinvError as e:
            return self.fail(e)

    async def render(self, request: Request) -> Response:
        try:
            png, ms = await run_in_threadpool(self.st.render, await self.json_body(request, schema.EDIT))
        except (OptinvError, ValueError, TypeError) as e:
            return self.fail(e)
        return Response(png, media_type="image/png",
                        headers={"X-Render-Ms": f"{ms['wall']:.1f}", "X-Render-Cpu-Ms": f"{ms['cpu']:.1f}"})

    async def save(self, request: Request) -> Response:
        try:
            name, data = await run_in_threadpool(self.st.save_edit, await self.json_body(request, schema.EDIT))
        except (OptinvError, ValueError, TypeError) as e:
            return self.fail(e)
        return Response(data, media_type="application/octet-stream",
                        headers={"Content-Disposition": f'attachment; filename="{name}"'})

    def routes(self) -> list:
        post = {"methods": ["POST"]}
        return [Route("/", self.index), Route("/api/info", self.info), Route("/samples/{kind}/{name}", self.sample),
                Route("/api/upload", self.upload, **post), Route("/api/jobs", self.submit, **post),
                Route("/api/jobs/{job}/events", self.events), Route("/api/jobs/{job}/cancel", self.cancel, **post),
                Route("/api/results/{id}/{kind}", self.download), Route("/api/edit/seed", self.seed, **post),
                Route("/api/edit/render", self.render, **post), Route("/api/edit/save", self.save, **post),
                Mount("/static", StaticFiles(directory=STATIC), name="static")]


def create_app(g: Generator, wording: Callable[[str], str] = str, host: str = "127.0.0.1") -> Starlette:
    """The ASGI app for generator ``g``; ``wording`` turns engine messages into the CLI's (flags)."""
    st = Studio(g, wording)
    middleware = [Middleware(SecurityHeaders)]
    if host in LOOPBACK:  # a page on another site cannot reach us through a rebound DNS name
        middleware.append(Middleware(TrustedHostMiddleware, allowed_hosts=list(HOST_HEADERS)))
    app = Starlette(routes=Api(st).routes(), middleware=middleware)
    app.state.studio = st
    return app


# -------------------------------------------------------------------- running
@dataclass
class Running:
    """A studio server started by :func:`launch`: its URL, and how to stop it."""

    url: str
    server: uvicorn.Server
    thread: threading.Thread | None
    app: Starlette

    def stop(self) -> None:
        self.app.state.studio.close()
        self.server.should_exit = True
        if self.thread is not None:
            self.thread.join(timeout=10)


def _bind(host: str, port: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as e:
        sock.close()
        raise OptinvError(f"cannot listen on {host}:{port}: {e.strerror or e} (choose another `port`)") from None
    return sock


def launch(g: Generator, host: str = "127.0.0.1", port: int = 0, wording: Callable[[str], str] = str) -> Running:
    """Serve in a background thread (port 0 = any free port): for tests, benchmarks and notebooks."""
    app = create_app(g, wording, host)
    sock = _bind(host, port)
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", lifespan="off", timeout_graceful_shutdown=1))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, name="optinv-studio", daemon=True)
    thread.start()
    for _ in range(1000):
        if server.started:
            break
        time.sleep(0.01)
    return Running(_url(host, sock), server, thread, app)


def _url(host: str, sock: socket.socket) -> str:
    shown = "127.0.0.1" if host in ("0.0.0.0", "::", "") else host
    if ":" in shown:  # an IPv6 address is written in brackets in a URL
        shown = f"[{shown}]"
    return f"http://{shown}:{sock.getsockname()[1]}/"


def is_loopback(host: str) -> bool:
    """Only this machine can reach a server on ``host`` (the banner warns otherwise)."""
    return host in LOOPBACK


def serve(model: str | None = None, host: str = "127.0.0.1", port: int = 8765, device: str = "auto",
          wording: Callable[[str], str] = str, announce: Callable[[str], None] = print) -> None:
    """Load the model, bind, say the URL, serve until Ctrl-C or SIGTERM (both delete the uploads)."""
    g = get_model(model, resolve_device(device))
    # uvicorn re-raises SIGTERM after its shutdown; with the default handler that kills the process
    # before the uploads are deleted, so it becomes an exit that runs the cleanup below
    main = threading.current_thread() is threading.main_thread()
    previous = signal.signal(signal.SIGTERM, _exit_on_sigterm) if main else None
    app = None
    try:
        app = create_app(g, wording, host)
        sock = _bind(host, port)
        announce(_url(host, sock))
        server = uvicorn.Server(uvicorn.Config(app, log_level="warning", lifespan="off", timeout_graceful_shutdown=1))
        server.run(sockets=[sock])
    finally:
        if app is not None:
            app.state.studio.close()
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)


def _exit_on_sigterm(signum: int, frame: Any) -> None:
    raise SystemExit(128 + signum)
