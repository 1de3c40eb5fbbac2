"""Natural-image backgrounds for the realistic renderer: patches of photographs and textures.

MJSynth blends words over crops of real photographs; so does :mod:`crnn_onnx.synth.scene`,
from whatever photographs and textures are installed: Debian's desktop wallpapers
(``plasma-workspace-wallpapers``, ``gnome-backgrounds``, ``mate-backgrounds``,
``ukui-wallpapers``, ``lomiri-wallpapers``), GIMP's texture patterns (``gimp-data``: wood,
stone, fabric, paper …), MyPaint's paper backgrounds, and scikit-image's sample photos when
it is installed (``scripts/install_synth_assets.sh`` installs them all). The images are
loaded once, shrunk to at most :data:`MAX_SIDE` pixels, and cached as one ``.npz`` under the
user's cache folder, keyed by the files' names, sizes and times.
"""

from __future__ import annotations

import hashlib
import os
import random
import struct
from collections.abc import Sequence
from functools import lru_cache
from pathlib import Path

import cv2
import numpy as np

from crnn_onnx.atomic import atomic_path
from crnn_onnx.errors import CRNNError

__all__ = ["BACKGROUND_DIRS", "MAX_SIDE", "BackgroundBank", "default_bank", "read_gimp_pattern"]

#: Folders searched for background images, in this order.
BACKGROUND_DIRS: tuple[str, ...] = (
    "/usr/share/backgrounds",
    "/usr/share/wallpapers",
    "/usr/share/gimp/2.0/patterns",
    "/usr/share/mypaint/backgrounds",
)
#: Longest side of a stored background image, in pixels.
MAX_SIDE = 640
_EXTENSIONS = (".jpg", ".jpeg", ".png", ".pat")
_MIN_SIDE = 48


def _skimage_data_dir() -> list[str]:
    try:
        import skimage.data
    except ImportError:
        return []
    return [str(Path(skimage.data.__file__).parent)]


def read_gimp_pattern(path: str | Path) -> np.ndarray:
    """Read a GIMP ``.pat`` texture: (H, W, 3) uint8 BGR.

    Raises:
        CRNNError: not a GIMP pattern, or truncated.
    """
    data = Path(path).read_bytes()
    try:
        header_size, _version, width, height, depth = struct.unpack(">5I", data[:20])
    except struct.error:
        raise CRNNError(f"{path}: not a GIMP pattern") from None
    if data[20:24] != b"GPAT" or depth not in (1, 2, 3, 4):
        raise CRNNError(f"{path}: not a GIMP pattern")
    pixels = np.frombuffer(data, np.uint8, width * height * depth, header_size)
    if pixels.size != width * height * depth:  # pragma: no cover - frombuffer raises first
        raise CRNNError(f"{path}: truncated GIMP pattern")
    image = pixels.reshape(height, width, depth)[..., : 3 if depth >= 3 else 1]
    if image.shape[2] == 1:
        image = np.repeat(image, 3, axis=2)
    return np.ascontiguousarray(image[..., ::-1])


def _discover(dirs: Sequence[str]) -> list[Path]:
    found: list[Path] = []
    for root in dirs:
        if not Path(root).is_dir():
            continue
        for dirpath, _dirs, files in os.walk(root):
            for name in sorted(files):
                if name.lower().endswith(_EXTENSIONS) and "screenshot" not in name.lower():
                    found.append(Path(dirpath) / name)
    return sorted(found)


def _load(path: Path) -> np.ndarray | None:
    image: np.ndarray | None
    try:
        if path.suffix.lower() == ".pat":
            image = read_gimp_pattern(path)
        else:
            image = cv2.imread(str(path), cv2.IMREAD_COLOR)
    except (CRNNError, OSError, ValueError):
        return None
    if image is None or min(image.shape[:2]) < _MIN_SIDE:
        return None
    scale = MAX_SIDE / max(image.shape[:2])
    if scale < 1:
        image = cv2.resize(image, (round(image.shape[1] * scale), round(image.shape[0] * scale)),
                           interpolation=cv2.INTER_AREA)
    return np.ascontiguousarray(image[..., ::-1])  # RGB, as the renderers compose in RGB


class BackgroundBank:
    """Background images held in memory, and random patches cut from them.

    Args:
        images: (H, W, 3) uint8 RGB images, each side at least 48 pixels.
    """

    def __init__(self, images: Sequence[np.ndarray]) -> None:
        if not images:
            raise CRNNError("a background bank needs at least one image")
        self.images = list(images)

    def __len__(self) -> int:
        return len(self.images)

    @classmethod
    def from_dirs(cls, dirs: Sequence[str] | None = None, cache_dir: Path | None = None
                  ) -> BackgroundBank:
        """Load every image under ``dirs`` (default :data:`BACKGROUND_DIRS` and scikit-image's
        samples), through the on-disk cache.

        Raises:
            CRNNError: no usable image was found.
        """
        folders = list(dirs) if dirs is not None else [*BACKGROUND_DIRS, *_skimage_data_dir()]
        paths = _discover(folders)
        if not paths:
            raise CRNNError(
                f"no background images found under {', '.join(folders)}; run "
                "scripts/install_synth_assets.sh or give a folder of photographs"
            )
        key = hashlib.blake2b(b"npz-arr-v2", digest_size=12)
        for path in paths:
            stat = path.stat()
            key.update(f"{path}\0{stat.st_size}\0{int(stat.st_mtime)}\0{MAX_SIDE}\n".encode())
        cache_dir = cache_dir or Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")
                                      ) / "crnn-onnx" / "backgrounds"
        cache = cache_dir / f"{key.hexdigest()}.npz"
        if cache.is_file():
            with np.load(cache) as stored:
                return cls([stored[f"arr_{i}"] for i in range(len(stored.files))])
        images = [image for image in map(_load, paths) if image is not None]
        bank = cls(images)
        try:
            with atomic_path(cache) as tmp, open(tmp, "wb") as out:
                np.savez(out, *images)
        except CRNNError:
            pass  # a read-only cache folder only costs the next run the loading time
        return bank

    def patch(self, rng: random.Random, height: int, width: int) -> np.ndarray:
        """A random (height, width, 3) float32 RGB patch: a random image, region, scale and
        flip."""
        image = self.images[rng.randrange(len(self.images))]
        ih, iw = image.shape[:2]
        # How much of the source one output pixel covers: zoomed in on texture, or a wide view.
        scale = rng.uniform(0.3, 2.5)
        src_h = min(ih, max(4, round(height * scale)))
        src_w = min(iw, max(4, round(src_h * width / height)))
        src_h = min(ih, max(4, round(src_w * height / width)))
        y = rng.randint(0, ih - src_h)
        x = rng.randint(0, iw - src_w)
        region = image[y:y + src_h, x:x + src_w]
        if rng.random() < 0.5:
            region = region[:, ::-1]
        out = cv2.resize(np.ascontiguousarray(region), (width, height),
                         interpolation=cv2.INTER_AREA if src_h > height else cv2.INTER_LINEAR)
        return out.astype(np.float32)


@lru_cache(maxsize=1)
def default_bank() -> BackgroundBank:
    """The bank of the installed backgrounds, loaded once per process."""
    return BackgroundBank.from_dirs()
