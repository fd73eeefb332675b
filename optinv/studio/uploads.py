"""The studio's uploads: images read exactly as the CLI reads the same file (same checks and
messages), photographs kept for alignment, latent files of any format bound to the model."""

from __future__ import annotations

from pathlib import Path
from typing import Any


from optinv.edit import edits as E
from optinv.errors import InputImageError, OptinvError
from optinv.io.fileio import latent_stem
from optinv.engine.inputs import Decoded
from optinv.io.image_files import image_to_tensor, load_photo, read_image
from optinv.io.latent_formats import read_foreign, sniff
from optinv.io.latents import check_model, from_foreign, load_latent
from optinv.engine.operators import downscale_operator
from optinv.studio.state import LatentEntry, Page, Upload, png_bytes, remove_file

from optinv.studio.wire import MAX_UPLOAD_BYTES, data_url, safe_name


class Uploads:
    """Part of :class:`optinv.studio.service.Studio` (uses its ``g``, ``say``, ``page``, ``new_file``…)."""

    def check_upload(self, page: Page, purpose: str, name: str, data: bytes, align: bool = False) -> dict[str, Any]:
        """Read an upload exactly as the CLI reads the same file (same messages); keep it for the page.

        ``align``: a photograph of any size and shape for invert/pulse, to be face-aligned by the job.
        """
        if len(data) > MAX_UPLOAD_BYTES:
            raise InputImageError(f"{safe_name(name)}: {len(data) / 2**20:.1f} MB is too large "
                                  f"(limit {MAX_UPLOAD_BYTES // 2**20} MB)")
        path = self.new_file(name, data)
        try:
            return self._read_upload(page, purpose, path, align)
        except BaseException:
            remove_file(path)  # a refused upload is not kept
            raise

    def _read_upload(self, page: Page, purpose: str, path: Path, align: bool) -> dict[str, Any]:
        notes: list[str] = []
        if purpose == "latent":
            rec = self.read_latent(path)
            remove_file(path)  # the record is kept in memory
            key = page.add(LatentEntry(name=latent_stem(path.name), record=rec), "l")
            image = E.render(self.g, [E.from_latent(rec)])[0]
            return {"id": key, "name": latent_stem(path.name), "preview": data_url(png_bytes(image)), "notes": notes}
        if align and purpose in ("invert", "pulse"):
            photo = load_photo(path, notes=notes)
            photo.thumbnail((4 * self.g.size, 4 * self.g.size))
            key = page.add(Upload(name=path.stem, path=path, purpose=purpose), "u")
            return {"id": key, "name": path.stem, "preview": data_url(png_bytes(photo)),
                    "notes": [self.say(n) for n in notes]}
        if purpose not in ("pulse", "invert", "paint"):
            raise OptinvError(f"unknown upload purpose {purpose!r}")
        decoded = Decoded(path, read_image(path, notes), list(notes))  # read once; the job converts this
        if purpose == "pulse":
            t = image_to_tensor(decoded.image, path, notes=notes)
            downscale_operator(self.g.size, t.shape[-1], "the low-res input")
        else:
            t = image_to_tensor(decoded.image, path, size=self.g.size, notes=notes)
        key = page.add(Upload(name=path.stem, path=path, purpose=purpose, decoded=decoded), "u")
        return {"id": key, "name": path.stem, "preview": data_url(png_bytes(t)),
                "notes": [self.say(n) for n in notes]}

    def read_latent(self, path: Path) -> Any:
        """An optinv latent file for this model, or an NVIDIA / rosinality one (bound to this model)."""
        if path.suffix.lower() != ".npz" and sniff(path) == "optinv":
            rec = load_latent(path)
            check_model(rec, self.g, what=path.name)
            return rec
        return from_foreign(read_foreign(str(path), self.g), self.g)
