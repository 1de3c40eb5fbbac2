"""Synthetic word crops for training and evaluating CRNN recognisers (needs Pillow).

* :mod:`~crnn_onnx.synth.words` and :mod:`~crnn_onnx.synth.fonts`: what is written and with
  which fonts, each split into ``train`` and ``heldout`` so a held-out set never shares a
  word or a font family with training;
* :mod:`~crnn_onnx.synth.render`: the plain renderer; :mod:`~crnn_onnx.synth.scene`: the
  realistic one (natural-image backgrounds, signs, curved and projected words, outlined,
  shadowed and extruded lettering, neighbouring letters, uneven light), drawing on
  :mod:`~crnn_onnx.synth.backgrounds` and :mod:`~crnn_onnx.synth.effects`;
* :mod:`~crnn_onnx.synth.dataset`: samples of a split, and labelled folders for ``eval``.
"""
