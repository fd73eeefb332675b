"""The studio's edits: latents from seeds, results or uploads composed with directions, mixing and
blends, rendered for the sliders and saved as latent files (through :mod:`optinv.edit.edits`)."""

from __future__ import annotations

import io
import time
from typing import Any

import numpy as np
import torch
from PIL import Image

from optinv.edit import edits as E
from optinv.engine.bounds import finite_number, truncated_w
from optinv.errors import OptinvError
from optinv.io.latents import model_ref, new_record, save_latent
from optinv.engine.options import SEED_MAX, check_seed
from optinv.studio.state import LatentEntry, Page, ResultEntry, png_bytes

from optinv.studio.wire import RENDER_THREADS, data_url, decode_data_url


class Editing:
    """Part of :class:`optinv.studio.service.Studio` (uses its ``g``, ``say``, ``page``, ``new_file``…)."""

    def record(self, page: Page, key: Any) -> tuple[str, Any]:
        entry = page.get(str(key), ResultEntry) or page.get(str(key), LatentEntry)
        if entry is None:
            raise OptinvError("choose a latent first (a result of this page, a file or a seed)")
        return entry.name, entry.record

    def seed_latent(self, page: Page, seed: Any, truncation: Any = 0.7) -> dict[str, Any]:
        g = self.g
        if not isinstance(seed, (int, str)) or isinstance(seed, bool) or not str(seed).strip().isdigit():
            raise OptinvError(f"`seed` must be an integer between 0 and {SEED_MAX}, got {seed!r}")
        seed, psi = int(seed), finite_number(truncation, "`truncation`")
        check_seed(seed)
        z = torch.randn(1, g.style_dim, generator=torch.Generator().manual_seed(seed)).to(g.w_avg.device)
        w = truncated_w(g, z, psi)[0]
        wplus = w.reshape(1, -1).expand(g.n_latent, -1).clone().cpu()
        rec = new_record("wplus", {"wplus": wplus[None].clone()}, [n.detach().cpu().clone() for n in g.noise_list()],
                         model_ref(g), wplus, settings={"seed": seed, "truncation": psi})
        key = page.add(LatentEntry(name=f"seed{seed}", record=rec), "l")
        image = E.render(g, [E.from_latent(rec)])[0]
        return {"id": key, "name": f"seed{seed}", "preview": data_url(png_bytes(image))}

    def compose(self, body: dict[str, Any]) -> tuple[str, Any, E.Editable]:
        """The edited latent a render/save request describes: directions on A, then interpolate/mix/blend with B."""
        page = self.page(body.get("page"))
        name, rec = self.record(page, body.get("a"))
        e = E.from_latent(rec)
        alphas = body.get("alphas") or {}
        if not isinstance(alphas, dict):
            raise OptinvError("`alphas` must be an object of direction names and amounts")
        for d, alpha in alphas.items():
            if d not in self.directions:
                raise OptinvError(f"unknown direction {d!r} (known: {', '.join(self.directions)})")
            alpha = finite_number(alpha, f"the amount of {d!r}")
            if alpha:
                e = E.apply_direction(e, self.directions[d], alpha)
        mode = body.get("mode") or "none"
        if mode != "none":
            bname, brec = self.record(page, body.get("b"))
            b = E.from_latent(brec)
            layers = E.parse_layers(body.get("layers") or None, self.g.n_latent)
            if mode == "interpolate":
                e = E.interpolate(e, b, [min(1.0, max(0.0, finite_number(body.get("t", 0.5), "`t`")))])[0]
            elif mode == "mix":
                e = E.mix(e, b, layers)
            elif mode == "blend":
                e = E.blend_maps(e, b, self.mask(body.get("mask")), layers, feature_sizes=self.g.layer_sizes())
            else:
                raise OptinvError(f"unknown edit mode {mode!r}")
            name = f"{name}_{mode}_{bname}"
        return name, rec, e

    def mask(self, data: Any) -> torch.Tensor:
        """The painted blend mask: its alpha, 0 → A, 1 → B (an unpainted mask is all A)."""
        if not data:
            return torch.zeros(self.g.size, self.g.size)
        try:
            with Image.open(io.BytesIO(decode_data_url(data, "mask"))) as src:
                if src.format != "PNG" or src.width * src.height > (4 * self.g.size) ** 2:
                    raise OptinvError(f"mask: expected a PNG of at most {4 * self.g.size}² pixels")
                im = src.convert("RGBA")
        except (OSError, ValueError, Image.DecompressionBombError):
            raise OptinvError("mask: not a readable PNG image") from None
        return torch.from_numpy(np.asarray(im, dtype=np.float32)[..., 3].copy()) / 255.0

    def render(self, body: dict[str, Any]) -> tuple[bytes, dict[str, float]]:
        """One slider frame as PNG, and its cost: wall and CPU milliseconds of this thread.

        One intra-op thread (a per-thread setting, so jobs keep theirs): a 64² frame is too
        small to share, and spinning threads cost more than they give on a busy machine.
        """
        torch.set_num_threads(RENDER_THREADS)
        t0, c0 = time.perf_counter(), time.thread_time()
        _, _, e = self.compose(body)
        png = png_bytes(E.render(self.g, [e])[0])
        return png, {"wall": (time.perf_counter() - t0) * 1000, "cpu": (time.thread_time() - c0) * 1000}

    def save_edit(self, body: dict[str, Any]) -> tuple[str, bytes]:
        name, rec, e = self.compose(body)
        E.check_editable(self.g, e)
        path = self.new_file(f"{name}.latent.pt", b"")
        save_latent(E.to_latent(e, rec), path)
        return path.name, path.read_bytes()
