"""The benchmarks' per-epoch wall clock: a Keras callback whose ``times`` lists each epoch's
seconds (Keras imported on first use)."""

from __future__ import annotations

import time


def epoch_timer():
    """A ``keras.callbacks.Callback`` that records each epoch's wall time in ``.times``."""
    import keras

    class EpochTimer(keras.callbacks.Callback):
        def on_train_begin(self, logs=None):
            self.times: list[float] = []

        def on_epoch_begin(self, epoch, logs=None):
            self.t0 = time.perf_counter()

        def on_epoch_end(self, epoch, logs=None):
            self.times.append(time.perf_counter() - self.t0)

    return EpochTimer()
