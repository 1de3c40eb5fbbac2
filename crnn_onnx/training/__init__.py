"""Training: fine-tuning a CRNN on labelled crops (:func:`trainer.finetune`, behind the
``train`` extra) and what it reads: labels fitted to a charset (``labels``), labelled and
rendered crops (``data``, ``real``, ``replay``) and their augmentation (``augment``).
Only ``trainer`` and ``charset`` import torch; the rest is numpy and OpenCV.
"""
