"""Training data beyond the synthetic renderer: real photographed crops and their augmentation.

Numpy and OpenCV only; the training loop itself (``scripts/train.py``) brings torch.
"""
