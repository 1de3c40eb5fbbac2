"""crnn-onnx: export a CRNN text recogniser to ONNX and run it fast with ONNX Runtime."""

from __future__ import annotations

import os

__all__ = ["__version__"]

# OpenCV reads its limit on decoded image size once, when cv2 loads. Setting it here, before
# any module of this package imports cv2, makes every decoder refuse a decompression bomb
# before allocating it (images.MAX_PIXELS; images.py also checks headers itself, for when
# cv2 was loaded first). A value already in the environment wins.
os.environ.setdefault("OPENCV_IO_MAX_IMAGE_PIXELS", "50000000")

__version__ = "0.1.0"
