"""Keras models: MNIST presets (``presets``), the layer-stack editor's specs (``stack``) and
ImageNet networks with offline-safe weights (``pretrained``).

Import what you need from here (``from cnnlib.models import build_tutorial_convnet``);
Keras itself is imported only when a model is built.
"""

from cnnlib.models.presets import *  # noqa: F403
from cnnlib.models.pretrained import *  # noqa: F403
from cnnlib.models.stack import *  # noqa: F403
