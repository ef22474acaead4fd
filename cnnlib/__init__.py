"""CNN Lab's logic, importable and testable without Streamlit. Packages, in dependency order
(each imports only from those before it; ``tests/test_import_graph.py`` checks it):

- ``core``: errors, argument checks, text, colour maps, budgets (the limits), heap, Keras'
  home folder, the decoding sandbox;
- ``data``: images as arrays, sample photos, digits, MNIST and Fashion-MNIST, the
  ``TrainingData`` seam;
- ``conv``: convolution arithmetic in NumPy, kernels, the lab's logic and its quiz;
- ``models``: the layer vocabulary and registry, presets, model graphs (CNN Lab's own model
  spec, and a ``.keras`` configuration translated into it), pretrained networks, the
  session's model registry;
- ``inspect``: activations, receptive fields, saliency, feature visualisation, ImageNet;
- ``training``: the one task base of every background job and where its work runs, the
  trainer and its phase runner, cost, evaluation, experiments, own-images training, the
  filter grid;
- ``uploads``: untrusted files (image archives, ``.keras`` models).

The modules at this top level (``images``, ``saliency``, ``visualize``, ``folders``) are the
public API the README lists; nothing inside the packages imports them. TensorFlow and Keras
are imported lazily, only where a model is built or run. ``docs/architecture.md`` describes
the whole.
"""
