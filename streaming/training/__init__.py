"""``stream-classify train`` and ``evaluate``: models for your own classes.

A tool layer like :mod:`streaming.bench`: it uses the server's modules (the model loader and
its preprocessing, so training sees frames exactly as serving does) and ``camera_tools`` (video
reading), and nothing in the server imports it. TensorFlow and matplotlib are imported only
when a command runs.

Modules: ``values`` (problems, frames), ``folders`` and ``annotations`` (input kinds),
``sampling`` (frames from videos), ``loading`` (inputs to frames), ``split`` (leak-free
validation), ``backbones``, ``pipeline`` (``tf.data``), ``trainer`` (fit, checkpoints),
``evaluation``/``assessment``/``plots`` (scores and pictures), ``model_card``, ``job`` (a whole
run), ``train_cli``/``evaluate_cli``/``inputs_cli`` (commands).
"""

from __future__ import annotations
