"""Saliency maps: which pixels of one input speak for one class.

``saliency_map(model, x, class_index, method=...)`` returns an (H, W) float32 map in [0, 1]
for one (H, W, C) input, prepared as the model expects (raw pixels for models that rescale
inside, ``preprocess_input``-ed for ResNet50/VGG19). Methods:

- "gradcam": Grad-CAM. The feature maps A_k of a conv layer (default: the last layer with a
  4-D output) weighted by the mean gradient of the class score, ReLU(Σ_k w_k A_k), upsampled
  bilinearly to (H, W).
- "gradcam++": Grad-CAM++ (Chattopadhyay et al.), with the usual exponential-score closed
  form: α = g² / (2g² + Σ_ab A·g³), w_k = Σ_ab α·ReLU(g). Same single gradient pass.
- "gradients": vanilla gradients (Simonyan et al.), max over channels of |∂score/∂x|.
- "smoothgrad": the mean of the gradient maps of ``samples`` noisy copies of x (Gaussian
  noise, σ = ``noise`` × (max − min of x)), computed in a few batched passes.
- "integrated_gradients": (x − baseline) × the mean gradient along the straight path from
  ``baseline`` (default all zeros) to x, ``steps`` midpoints; map |Σ_c attribution|.
- "occlusion": how much the class score drops when a ``patch`` × ``patch`` square (of
  ``value``, default 0) covers each pixel, averaged over the patches that cover it; patches
  ``stride`` apart, scored in batched forward passes.
- "scorecam": Score-CAM (Wang et al. 2020), without gradients. Each of ``maps`` feature maps
  A_k of the layer (those with the largest spatial standard deviation, as tf-keras-vis'
  Faster-Score-CAM; at most the layer's channels), upsampled bilinearly to (H, W) and
  min-max normalised to [0, 1], masks the input: x ⊙ H_k. Its weight is the paper's
  "increase of confidence" w_k = p_c(x ⊙ H_k) − p_c(0), with p_c the class's softmax
  probability and the all-zero input as baseline (the official code drops the baseline;
  keeping it makes the map class-discriminative: a region that argues for another class gets
  a negative weight). Map: ReLU(Σ_k w_k A_k), upsampled. ``maps`` + 2 forward passes, the
  masked copies in batches.
- "layercam": LayerCAM (Jiang et al. 2021): ReLU(Σ_k ReLU(∂score/∂A_k) ⊙ A_k), each location
  weighted by its own positive gradient instead of the map's mean gradient, so it also works
  at earlier, finer layers (``layer``). One forward and one backward pass, like Grad-CAM.

The class score is the class's *logit*: when the last layer is a softmax Dense layer, the
score is computed from that layer's input and kernel (h·W + b), as in the Grad-CAM paper, since
softmax probabilities saturate; otherwise (logits already, or another head) the model's output
as is. Shared models are never modified (no activation is swapped out).

Each model gets its sub-models and ``tf.function``s (fixed input signatures, so reruns do not
retrace) built once, in a cache keyed weakly by the model. Keras is imported inside functions.
"""

from __future__ import annotations

import threading
import time
import weakref
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

import numpy as np
from PIL import Image

from cnnlib.core.checks import is_whole
from cnnlib.core.errors import InvalidArgumentError
from cnnlib.models.pretrained import PretrainedModel

T = TypeVar("T")

METHODS: tuple[str, ...] = (
    "gradcam",
    "gradcam++",
    "gradients",
    "smoothgrad",
    "integrated_gradients",
    "occlusion",
    "scorecam",
    "layercam",
)
#: Display names for the page.
METHOD_LABELS: dict[str, str] = {
    "gradcam": "Grad-CAM",
    "gradcam++": "Grad-CAM++",
    "gradients": "Gradients",
    "smoothgrad": "SmoothGrad",
    "integrated_gradients": "Integrated gradients",
    "occlusion": "Occlusion",
    "scorecam": "Score-CAM",
    "layercam": "LayerCAM",
}
#: Each method's options and their defaults.
OPTIONS: dict[str, dict[str, Any]] = {
    "gradcam": {"layer": None},
    "gradcam++": {"layer": None},
    "gradients": {},
    "smoothgrad": {"samples": 16, "noise": 0.15, "seed": 0},
    "integrated_gradients": {"steps": 32, "baseline": None},
    "occlusion": {"patch": None, "stride": None, "value": 0.0},
    "scorecam": {"layer": None, "maps": 32},
    "layercam": {"layer": None},
}


@dataclass(frozen=True)
class MethodNote:
    """When to use a saliency method, for the page: ``use_when`` and ``cost`` are one or two
    sentences each for a learner; ``source`` is the paper it comes from."""

    use_when: str
    cost: str
    source: str


#: "Which method when", drawn from each method's paper and from Adebayo et al.'s sanity
#: checks (NeurIPS 2018); ``sanity_check`` lets a learner test the last point themselves.
METHOD_NOTES: dict[str, MethodNote] = {
    "gradcam": MethodNote(
        "Which region of the image made the network choose this class? A coarse map at the "
        "last convolution's resolution (7×7 for ResNet50) that changes with the class asked "
        "about. It passes the weight-randomisation sanity check.",
        "One forward and one backward pass.",
        "Selvaraju et al., Grad-CAM, ICCV 2017",
    ),
    "gradcam++": MethodNote(
        "Like Grad-CAM, but weighs each location's positive gradient, so it covers more of the "
        "object and several objects of the same class better.",
        "The same single pass as Grad-CAM.",
        "Chattopadhyay et al., Grad-CAM++, WACV 2018",
    ),
    "gradients": MethodNote(
        "Which single pixels would change the score most if nudged: pixel-sharp but noisy, and "
        "blind where the network saturates. A quick first look.",
        "One forward and one backward pass.",
        "Simonyan et al., Deep Inside Convolutional Networks, ICLR workshop 2014",
    ),
    "smoothgrad": MethodNote(
        "Gradients averaged over noisy copies of the image: the same question with much less "
        "speckle, so the object's shape shows. Prefer it to plain gradients when you have time.",
        "One forward and backward pass per sample (16 by default), batched.",
        "Smilkov et al., SmoothGrad, ICML workshop 2017",
    ),
    "integrated_gradients": MethodNote(
        "How much each pixel contributed, compared with a baseline image (black by default): "
        "the attributions add up to the score's change from the baseline. The answer depends "
        "on the baseline, and multiplying by the input keeps the image's outlines even in a "
        "random network: check it with the sanity check.",
        "One forward and backward pass per step (32 by default), batched.",
        "Sundararajan et al., Axiomatic Attribution for Deep Networks, ICML 2017",
    ),
    "occlusion": MethodNote(
        "What happens to the score when a square hides each region: no gradients, works with "
        "any model and is easy to explain. Coarse (the square's size), and a grey square is "
        "itself an unusual input.",
        "One forward pass per position of the square: hundreds to thousands.",
        "Zeiler and Fergus, Visualizing and Understanding Convolutional Networks, ECCV 2014",
    ),
    "scorecam": MethodNote(
        "Grad-CAM's question without gradients: each feature map is used as a mask on the "
        "image, and weighted by how much the masked image alone raises the class's "
        "probability. Less noisy than Grad-CAM in its authors' tests, and useful where "
        "gradients are unreliable (saturated or flat).",
        "One forward pass per feature map used (32 by default), batched.",
        "Wang et al., Score-CAM, CVPR workshops 2020",
    ),
    "layercam": MethodNote(
        "Grad-CAM with each location weighted by its own positive gradient: it also works at "
        "earlier layers, whose maps are finer (choose the layer), and combining layers gives "
        "sharper object outlines.",
        "One forward and one backward pass.",
        "Jiang et al., LayerCAM, IEEE Transactions on Image Processing 2021",
    ),
}

#: Budgets, checked before any work.
MAX_SAMPLES = 128
MAX_STEPS = 256
MAX_OCCLUSIONS = 4096
MAX_SCORECAM_MAPS = 512
#: Input elements per batched pass (8 images of 224 × 224 × 3): bounds the memory the
#: backward pass keeps for SmoothGrad and integrated gradients.
BATCH_ELEMENTS = 8 * 224 * 224 * 3


@dataclass(frozen=True)
class SaliencyResult:
    """One method's map for the side-by-side view, and the seconds it took (the first call
    for a model also builds and traces its functions)."""

    method: str
    #: (H, W) float32 in [0, 1].
    map: np.ndarray
    seconds: float

    @property
    def label(self) -> str:
        return METHOD_LABELS[self.method]


# ---------------------------------------------------------------- per-model compiled functions


class _Entry:
    def __init__(self) -> None:
        self.lock = threading.RLock()
        self.functions: dict[Any, Any] = {}


_entries: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()
_entries_lock = threading.Lock()


def keras_model_and_lock(model: Any) -> tuple[Any, Any]:
    """The ``keras.Model`` behind ``model`` (a ``PretrainedModel`` or a Keras model) and the lock
    that serialises its use: the shared model's ``use()`` (a bounded wait, then
    ``ModelBusyError``), else one ``RLock`` per Keras model."""

    if isinstance(model, PretrainedModel):
        return model.model, model.use()
    return model, _entry(model).lock


def _entry(keras_model: Any) -> _Entry:
    with _entries_lock:
        entry = _entries.get(keras_model)
        if entry is None:
            entry = _entries[keras_model] = _Entry()
        return entry


def model_function(keras_model: Any, key: Any, build: Callable[[], T]) -> T:
    """``build()``'s result, built once per (model, key) and kept while the model lives.

    ``build`` must not hold a reference to ``keras_model`` itself (only to its layers and
    tensors), or the model would never be freed.
    """
    entry = _entry(keras_model)
    with entry.lock:
        if key not in entry.functions:
            entry.functions[key] = build()
        return entry.functions[key]


def cached_function_count(model: Any) -> int:
    """How many compiled functions are cached for ``model`` (for tests and the page)."""
    keras_model, _ = keras_model_and_lock(model)
    with _entries_lock:
        entry = _entries.get(keras_model)
    return 0 if entry is None else len(entry.functions)


# ---------------------------------------------------------------- checks


def input_shape(keras_model: Any) -> tuple[int, int, int]:
    """(H, W, C) of a model with one fixed-size image input."""
    inputs = getattr(keras_model, "inputs", None) or []
    shape = tuple(inputs[0].shape[1:]) if len(inputs) == 1 else ()
    if len(shape) != 3 or any(s is None for s in shape):
        raise InvalidArgumentError(
            "Saliency maps need a built model with one fixed-size image input (H, W, C); "
            f"this model's input shape is {shape or 'unknown'}."
        )
    return tuple(int(s) for s in shape)  # type: ignore[return-value]


def _check_input(keras_model: Any, x: np.ndarray) -> np.ndarray:
    """One input as (H, W, C) float32 (a (1, H, W, C) batch is accepted too)."""
    shape = input_shape(keras_model)
    a = np.asarray(x, dtype=np.float32)
    if a.ndim == 4 and a.shape[0] == 1:
        a = a[0]
    if a.shape != shape:
        raise InvalidArgumentError(
            f"The model takes one input of shape {shape}; got an array of shape {a.shape}. "
            "Prepare the image as the model expects first."
        )
    if not np.all(np.isfinite(a)):
        raise InvalidArgumentError("The input contains NaN or infinite values.")
    return a


def num_classes(keras_model: Any) -> int:
    """K of a model with one (batch, K) output; ``InvalidArgumentError`` otherwise."""
    shape = tuple(keras_model.outputs[0].shape) if len(keras_model.outputs) == 1 else ()
    if len(shape) != 2 or shape[1] is None:
        raise InvalidArgumentError(
            f"Saliency maps need a model with one (batch, classes) output; this one has "
            f"{shape or 'several outputs'}."
        )
    return int(shape[1])


def _check_class(keras_model: Any, class_index: int) -> int:
    k = num_classes(keras_model)
    if not is_whole(class_index):
        raise InvalidArgumentError(f"The class index must be a whole number, got {class_index!r}.")
    if not 0 <= int(class_index) < k:
        raise InvalidArgumentError(
            f"This model has {k} classes: the class index must be from 0 to {k - 1}, "
            f"got {class_index}."
        )
    return int(class_index)


def conv_layer(model: Any, name: str | None = None) -> Any:
    """The layer named ``name`` (it must have a 4-D output), or the last layer with a 4-D
    (batch, h, w, channels) output: ResNet50's ``conv5_block3_out``."""
    keras_model, _ = keras_model_and_lock(model)
    if name is not None:
        try:
            layer = keras_model.get_layer(name)
        except ValueError:
            raise InvalidArgumentError(f"The model has no layer named {name!r}.") from None
        if _output_rank(layer) != 4:
            raise InvalidArgumentError(
                f"Layer {name!r} does not output feature maps (batch, h, w, channels); choose a "
                "convolution or pooling layer."
            )
        return layer
    for layer in reversed(keras_model.layers):
        if type(layer).__name__ != "InputLayer" and _output_rank(layer) == 4:
            return layer
    raise InvalidArgumentError(
        f"{keras_model.name} has no layer with feature maps for Grad-CAM; use another method."
    )


def _graph_node(keras_model: Any, layer: Any) -> Any:
    """The node where ``layer`` is called in ``keras_model``'s own graph, or None.

    A Sequential model loaded from a ``.keras`` file calls its layers once per rebuild, so
    ``layer.output`` (the first call's) may belong to an earlier, unconnected graph.
    """
    graph = getattr(keras_model, "_functional", None) or keras_model
    for nodes in getattr(graph, "_nodes_by_depth", {}).values():
        for node in nodes:
            if node.operation is layer:
                return node
    return None


def layer_output(keras_model: Any, layer: Any) -> Any:
    """``layer``'s output tensor in ``keras_model``'s own graph (for sub-models)."""
    node = _graph_node(keras_model, layer)
    return node.output_tensors[0] if node is not None else layer.output


def layer_input(keras_model: Any, layer: Any) -> Any:
    """``layer``'s input tensor in ``keras_model``'s own graph (for sub-models)."""
    node = _graph_node(keras_model, layer)
    return node.input_tensors[0] if node is not None else layer.input


def _output_rank(layer: Any) -> int | None:
    try:
        out = layer.output
    except (AttributeError, ValueError):  # a layer used several times has no single output
        return None
    return len(out.shape) if hasattr(out, "shape") else None


def _options(method: str, options: Mapping[str, Any]) -> dict[str, Any]:
    if method not in OPTIONS:
        raise InvalidArgumentError(
            f"Unknown saliency method {method!r}; choose one of {', '.join(METHODS)}."
        )
    unknown = sorted(set(options) - set(OPTIONS[method]))
    if unknown:
        allowed = ", ".join(OPTIONS[method]) or "none"
        raise InvalidArgumentError(
            f"{METHOD_LABELS[method]} has no option {', '.join(unknown)} (options: {allowed})."
        )
    return {**OPTIONS[method], **options}


def _int_option(name: str, value: Any, lo: int, hi: int) -> int:
    if not is_whole(value, lo, hi):
        raise InvalidArgumentError(
            f"{name} must be a whole number from {lo} to {hi}, got {value!r}."
        )
    return int(value)


# ---------------------------------------------------------------- the compiled functions


def logit_source(keras_model: Any) -> tuple[Any, Callable[[Any], Any]]:
    """(tensor a sub-model should output, function from it to the class logits): a softmax
    Dense head's input and h·W + b; a Softmax layer's input as is; else the model's output."""
    import keras

    head = keras_model.layers[-1]
    if isinstance(head, keras.layers.Dense) and (
        getattr(head.activation, "__name__", "") == "softmax"
    ):
        kernel, bias = head.kernel, head.bias

        def logits(h):
            z = keras.ops.matmul(h, kernel)
            return z if bias is None else z + bias

        return layer_input(keras_model, head), logits
    if isinstance(head, keras.layers.Softmax) or (
        isinstance(head, keras.layers.Activation)
        and getattr(head.activation, "__name__", "") == "softmax"
    ):
        return layer_input(keras_model, head), lambda h: h
    return keras_model.outputs[0], lambda h: h


def _cam_function(keras_model: Any, layer_name: str):
    """Compiled ((1, H, W, C) x, class) → ((h, w, c) feature maps, (h, w, c) gradients)."""
    import keras
    import tensorflow as tf

    layer = keras_model.get_layer(layer_name)
    source, logits = logit_source(keras_model)
    sub = keras.Model(keras_model.inputs[0], [layer_output(keras_model, layer), source])

    def run(x, class_index):
        with tf.GradientTape() as tape:
            feats, out = sub(x, training=False)
            tape.watch(feats)
            score = tf.gather(logits(out), class_index, axis=1)
        grads = tape.gradient(score, feats)
        return feats[0], grads[0]

    return _compile(run, keras_model)


def frozen_cam_functions(keras_model: Any, layer_name: str):
    """For a model whose layers up to ``layer_name`` do not change (a frozen backbone
    under a head that trains): (features, scores). ``features(x)``: (N, H, W, C) raw pixels
    → the layer's (N, h, w, c) feature maps, computed once; ``scores(A, classes)``: those
    maps and (N,) classes → ((N, K) class probabilities, (N, h, w, c) ∂logit/∂A), compiled
    over the layers after ``layer_name`` only. ``cam_from_gradients`` of them equals
    ``class_activation_map`` of each image, at a small part of its cost per call."""
    import keras
    import tensorflow as tf

    layer = keras_model.get_layer(layer_name)
    feats = layer_output(keras_model, layer)
    source, logits = logit_source(keras_model)
    body = keras.Model(keras_model.inputs[0], feats)
    tail = keras.Model(feats, [source, keras_model.outputs[0]])

    def scores(maps, classes):
        with tf.GradientTape() as tape:
            tape.watch(maps)
            hidden, probabilities = tail(maps, training=False)
            score = tf.gather(logits(hidden), classes, axis=1, batch_dims=1)
        return probabilities, tape.gradient(score, maps)

    spec = [tf.TensorSpec([None, *feats.shape[1:]], tf.float32), tf.TensorSpec([None], tf.int32)]
    return (
        lambda x: np.asarray(body(x, training=False), np.float32),
        tf.function(scores, input_signature=spec, autograph=False),
    )


def _score_functions(keras_model: Any):
    """Compiled (N, H, W, C) x, class → (input gradients, logits), and → (N, 2) scores: the
    class's logit and its softmax probability (the model's single output as is when it has
    only one), from one forward pass."""
    import keras
    import tensorflow as tf

    source, logits = logit_source(keras_model)
    sub = keras.Model(keras_model.inputs[0], source)
    single = num_classes(keras_model) == 1

    def gradient(x, class_index):
        with tf.GradientTape() as tape:
            tape.watch(x)
            score = tf.gather(logits(sub(x, training=False)), class_index, axis=1)
            total = tf.reduce_sum(score)  # samples are independent: ∂Σ/∂x_i = ∂score_i/∂x_i
        return tape.gradient(total, x), score

    def scores(x, class_index):
        z = logits(sub(x, training=False))
        p = z if single else tf.nn.softmax(z, axis=-1)
        return tf.stack([tf.gather(z, class_index, axis=1), tf.gather(p, class_index, axis=1)], 1)

    return _compile(gradient, keras_model), _compile(scores, keras_model)


def _compile(fn, keras_model: Any):
    import tensorflow as tf

    return tf.function(
        fn,
        input_signature=[
            tf.TensorSpec([None, *input_shape(keras_model)], tf.float32),
            tf.TensorSpec([], tf.int32),
        ],
        autograph=False,
    )


def _in_passes(keras_model: Any, lock, which: int, batch: np.ndarray, cls: int) -> np.ndarray:
    """Run the model's input-gradient (``which`` = 0) or scores (1) function on an (N, H, W,
    C) batch, ``BATCH_ELEMENTS`` input elements per pass, each pass under the model's lock (so
    a long SmoothGrad does not hold up other users of a shared model for all its passes)."""
    import tensorflow as tf

    fn = model_function(keras_model, "scores", lambda: _score_functions(keras_model))[which]
    index = tf.constant(cls, tf.int32)
    per = max(1, BATCH_ELEMENTS // int(np.prod(batch.shape[1:])))
    parts = []
    for i in range(0, len(batch), per):
        with lock:
            out = fn(tf.constant(batch[i : i + per]), index)
        parts.append((out[0] if which == 0 else out).numpy())
    return np.concatenate(parts)


def _gradients(keras_model: Any, lock, batch: np.ndarray, cls: int) -> np.ndarray:
    """∂score/∂x for each input of an (N, H, W, C) batch: (N, H, W, C) float32."""
    return _in_passes(keras_model, lock, 0, batch, cls)


def _scores(keras_model: Any, lock, batch: np.ndarray, cls: int) -> np.ndarray:
    """The class score (logit) of each input of an (N, H, W, C) batch: (N,) float32."""
    return _in_passes(keras_model, lock, 1, batch, cls)[:, 0]


def _probabilities(keras_model: Any, lock, batch: np.ndarray, cls: int) -> np.ndarray:
    """The class's probability for each input of an (N, H, W, C) batch: (N,) float32."""
    return _in_passes(keras_model, lock, 1, batch, cls)[:, 1]


# ---------------------------------------------------------------- the methods


def _normalize(m: np.ndarray) -> np.ndarray:
    """Non-negative map / its maximum → float32 in [0, 1] (all zeros when nothing is positive)."""
    m = np.maximum(np.nan_to_num(np.asarray(m, dtype=np.float64)), 0.0)
    top = float(m.max()) if m.size else 0.0
    return (m / top).astype(np.float32) if top > 0 else np.zeros(m.shape, np.float32)


def _resize(m: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """(h, w) → (H, W) float32, bilinear (values between the cells' centres interpolated)."""
    if m.shape == size:
        return np.asarray(m, dtype=np.float32)
    img = Image.fromarray(np.asarray(m, dtype=np.float32), mode="F")
    return np.asarray(img.resize((size[1], size[0]), Image.Resampling.BILINEAR))


def _upsample(cam: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """(h, w) → (H, W) bilinear, normalised again (pixel centres fall between the cells')."""
    return cam if cam.shape == size else _normalize(_resize(cam, size))


#: The methods ``class_activation_map`` computes from one forward and backward pass.
CAM_METHODS = ("gradcam", "gradcam++", "layercam")


def class_activation_map(
    model: Any,
    x: np.ndarray,
    class_index: int,
    *,
    layer: str | None = None,
    method: str = "gradcam",
) -> np.ndarray:
    """Grad-CAM, Grad-CAM++ or LayerCAM (``method``) at the layer's resolution: (h, w)
    float32 in [0, 1], e.g. (7, 7) for ResNet50 at 224 × 224; all zeros when nothing speaks
    for the class.

    With A the layer's (h, w, c) feature maps and g = ∂score/∂A: Grad-CAM
    ReLU(Σ_k mean(g_k) A_k); Grad-CAM++ weighs each map by Σ α·ReLU(g_k); LayerCAM
    ReLU(Σ_k ReLU(g_k) ⊙ A_k), each location by its own positive gradient.
    """
    import tensorflow as tf

    if method not in CAM_METHODS:
        raise InvalidArgumentError(f"method must be one of {', '.join(CAM_METHODS)}.")
    keras_model, lock = keras_model_and_lock(model)
    a = _check_input(keras_model, x)
    cls = _check_class(keras_model, class_index)
    name = conv_layer(keras_model, layer).name
    fn = model_function(keras_model, ("cam", name), lambda: _cam_function(keras_model, name))
    with lock:
        feats, grads = fn(tf.constant(a[None]), tf.constant(cls, tf.int32))
    return cam_from_gradients(feats.numpy(), grads.numpy(), method)


def cam_from_gradients(feats: np.ndarray, grads: np.ndarray, method: str = "gradcam") -> np.ndarray:
    """``class_activation_map``'s map from the layer's (h, w, c) feature maps A and their
    gradients g = ∂score/∂A: (h, w) float32 in [0, 1] (see there for each method)."""
    A, g = np.asarray(feats, np.float64), np.asarray(grads, np.float64)
    if method == "layercam":
        return _normalize((np.maximum(g, 0.0) * A).sum(axis=-1))
    if method == "gradcam++":
        g2, g3 = g**2, g**3
        denom = 2.0 * g2 + A.sum(axis=(0, 1), keepdims=True) * g3
        alpha = np.divide(g2, denom, out=np.zeros_like(g2), where=denom != 0)
        weights = (alpha * np.maximum(g, 0.0)).sum(axis=(0, 1))  # (c,)
    else:
        weights = g.mean(axis=(0, 1))  # (c,): importance of each feature map
    return _normalize((A * weights).sum(axis=-1))


def score_cam(
    model: Any,
    x: np.ndarray,
    class_index: int,
    *,
    layer: str | None = None,
    maps: int = OPTIONS["scorecam"]["maps"],
) -> np.ndarray:
    """Score-CAM at the layer's resolution: (h, w) float32 in [0, 1] (see the module's
    docstring). ``maps``: how many feature maps mask the input (1 to ``MAX_SCORECAM_MAPS``;
    those with the largest spatial standard deviation, at most the layer's channels). Costs
    ``maps`` + 2 forward passes: one for the feature maps, the masked copies and the
    all-zero baseline in batches.
    """
    import tensorflow as tf

    keras_model, lock = keras_model_and_lock(model)
    a = _check_input(keras_model, x)
    cls = _check_class(keras_model, class_index)
    maps = _int_option("maps", maps, 1, MAX_SCORECAM_MAPS)
    name = conv_layer(keras_model, layer).name
    # Grad-CAM's function (its gradient through the head costs little; one trace for both).
    fn = model_function(keras_model, ("cam", name), lambda: _cam_function(keras_model, name))
    with lock:
        feats, _ = fn(tf.constant(a[None]), tf.constant(cls, tf.int32))
    A = feats.numpy().astype(np.float32)  # (h, w, c)
    spread = A.reshape(-1, A.shape[-1]).std(axis=0)
    chosen = np.argsort(-spread, kind="stable")[: min(maps, A.shape[-1])]
    chosen = chosen[spread[chosen] > 0]  # a flat map masks nothing: weight 0
    if chosen.size == 0:
        return np.zeros(A.shape[:2], np.float32)
    masks = np.stack([_resize(A[:, :, k], a.shape[:2]) for k in chosen])  # (n, H, W)
    lo = masks.min(axis=(1, 2), keepdims=True)
    span = masks.max(axis=(1, 2), keepdims=True) - lo
    masks = np.divide(masks - lo, span, out=np.zeros_like(masks), where=span > 0)
    batch = np.concatenate([np.zeros_like(a)[None], a[None] * masks[..., None]])
    p = _probabilities(keras_model, lock, batch.astype(np.float32), cls).astype(np.float64)
    weights = p[1:] - p[0]  # the increase of confidence over the all-zero baseline
    return _normalize((A[:, :, chosen].astype(np.float64) * weights).sum(axis=-1))


def integrated_gradients(
    model: Any,
    x: np.ndarray,
    class_index: int,
    *,
    steps: int = 32,
    baseline: float | np.ndarray | None = None,
) -> np.ndarray:
    """Integrated-gradients attributions, (H, W, C) float32 (signed, not normalised).

    (x − baseline) × the mean gradient at ``steps`` midpoints of the straight path; their sum
    approaches score(x) − score(baseline) as ``steps`` grows (completeness).
    """
    keras_model, lock = keras_model_and_lock(model)
    a = _check_input(keras_model, x)
    cls = _check_class(keras_model, class_index)
    steps = _int_option("steps", steps, 1, MAX_STEPS)
    if baseline is None:
        base = np.zeros_like(a)
    else:
        base = np.broadcast_to(np.asarray(baseline, dtype=np.float32), a.shape)
        if not np.all(np.isfinite(base)):
            raise InvalidArgumentError("The baseline contains NaN or infinite values.")
    alphas = (np.arange(steps, dtype=np.float32) + 0.5) / steps
    path = base[None] + alphas[:, None, None, None] * (a - base)[None]
    grads = _gradients(keras_model, lock, path.astype(np.float32), cls)
    return ((a - base) * grads.mean(axis=0)).astype(np.float32)


def _gradient_map(g: np.ndarray) -> np.ndarray:
    """(…, H, W, C) gradients → (…, H, W): max over channels of |g|."""
    return np.abs(g).max(axis=-1)


def _smoothgrad(keras_model, a, cls, lock, *, samples, noise, seed) -> np.ndarray:
    samples = _int_option("samples", samples, 1, MAX_SAMPLES)
    seed = _int_option("seed", seed, 0, 2**32 - 1)
    if not isinstance(noise, int | float) or not 0.0 <= float(noise) <= 1.0:
        raise InvalidArgumentError(f"noise must be between 0 and 1, got {noise!r}.")
    sigma = float(noise) * float(a.max() - a.min())
    rng = np.random.default_rng(seed)
    batch = a[None] + rng.normal(0.0, sigma, size=(samples, *a.shape)).astype(np.float32)
    grads = _gradients(keras_model, lock, batch, cls)
    return _gradient_map(grads).mean(axis=0)


def _occlusion(keras_model, a, cls, lock, *, patch, stride, value) -> np.ndarray:
    h, w, _ = a.shape
    patch = max(1, round(min(h, w) / 8)) if patch is None else patch
    patch = _int_option("patch", patch, 1, min(h, w))
    stride = max(1, patch // 2) if stride is None else stride
    stride = _int_option("stride", stride, 1, patch)
    if not isinstance(value, int | float) or not np.isfinite(value):
        raise InvalidArgumentError(f"value must be a finite number, got {value!r}.")

    def starts(n: int) -> list[int]:
        s = list(range(0, n - patch + 1, stride))
        return s if s[-1] == n - patch else [*s, n - patch]  # the last patch reaches the edge

    rows, cols = starts(h), starts(w)
    if len(rows) * len(cols) > MAX_OCCLUSIONS:
        raise InvalidArgumentError(
            f"{len(rows)}×{len(cols)} occluded copies is more than {MAX_OCCLUSIONS}; use a "
            "larger patch or stride."
        )
    batch = np.repeat(a[None], len(rows) * len(cols) + 1, axis=0)  # copy 0: the original
    boxes = [(r, c) for r in rows for c in cols]
    for i, (r, c) in enumerate(boxes, start=1):
        batch[i, r : r + patch, c : c + patch] = value
    scores = _scores(keras_model, lock, batch, cls)
    drop = np.zeros((h, w)), np.zeros((h, w))
    for i, (r, c) in enumerate(boxes, start=1):
        drop[0][r : r + patch, c : c + patch] += scores[0] - scores[i]
        drop[1][r : r + patch, c : c + patch] += 1.0
    return drop[0] / drop[1]


def saliency_map(
    model: Any, x: np.ndarray, class_index: int, *, method: str, **options: Any
) -> np.ndarray:
    """(H, W) float32 map in [0, 1] of where ``x`` speaks for ``class_index``.

    ``model``: a ``keras.Model`` or ``PretrainedModel`` with one (H, W, C) input and one
    (batch, classes) output. ``x``: one (H, W, C) input, prepared as the model expects.
    ``method``: one of ``METHODS``; ``options`` as in ``OPTIONS[method]`` (gradcam, gradcam++,
    layercam: layer; smoothgrad: samples, noise, seed; integrated_gradients: steps, baseline;
    occlusion: patch, stride, value; scorecam: layer, maps). Raises ``InvalidArgumentError``
    for a bad method, class index, input shape or option.
    """
    opts = _options(method, options)
    keras_model, lock = keras_model_and_lock(model)
    a = _check_input(keras_model, x)
    cls = _check_class(keras_model, class_index)
    size = a.shape[:2]
    if method in CAM_METHODS:
        return _upsample(
            class_activation_map(model, a, cls, layer=opts["layer"], method=method), size
        )
    if method == "scorecam":
        return _upsample(score_cam(model, a, cls, **opts), size)
    if method == "gradients":
        return _normalize(_gradient_map(_gradients(keras_model, lock, a[None], cls)[0]))
    if method == "smoothgrad":
        return _normalize(_smoothgrad(keras_model, a, cls, lock, **opts))
    if method == "integrated_gradients":
        attributions = integrated_gradients(model, a, cls, **opts)
        return _normalize(np.abs(attributions.sum(axis=-1)))
    return _normalize(_occlusion(keras_model, a, cls, lock, **opts))


def saliency_maps(
    model: Any,
    x: np.ndarray,
    class_index: int,
    *,
    methods: Sequence[str] = METHODS,
    options: Mapping[str, Mapping[str, Any]] | None = None,
) -> list[SaliencyResult]:
    """Every method's map for the side-by-side view, in ``methods``' order, each timed.

    ``options`` maps a method to its options, e.g. ``{"smoothgrad": {"samples": 8}}``. All
    methods and options are checked before the first map is computed.
    """
    options = dict(options or {})
    unknown = sorted(set(options) - set(methods))
    if unknown:
        raise InvalidArgumentError(f"Options given for methods not asked for: {unknown}.")
    for method in methods:
        _options(method, options.get(method, {}))
    results = []
    for method in methods:
        start = time.perf_counter()
        m = saliency_map(model, x, class_index, method=method, **options.get(method, {}))
        results.append(SaliencyResult(method, m, time.perf_counter() - start))
    return results
