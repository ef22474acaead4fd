"""What one training step of a layer stack costs, from the stack's own arithmetic, checked
against the server's budgets before a training starts (``check_training``)."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

from cnnlib.core.budgets import FLOAT_BYTES, TRAINING_MEMORY_FACTOR, Budgets, format_bytes
from cnnlib.core.checks import is_whole
from cnnlib.core.errors import BudgetError
from cnnlib.models.stack import LayerSpec, SummaryRow, summarize_stack

__all__ = ["TrainingCost", "check_training", "training_cost"]


@dataclass(frozen=True)
class TrainingCost:
    """What one training step costs, from the layer arithmetic of ``summarize_stack``."""

    batch_size: int
    #: Trainable and non-trainable parameters (Keras' ``count_params()``).
    params: int
    #: Multiply-adds of one image's forward pass (Conv2D and Dense).
    multiply_adds_per_image: int
    #: Values of one image's forward activations: the input plus every layer's output.
    activation_values_per_image: int

    @property
    def multiply_adds(self) -> int:
        """Multiply-adds of one step's forward pass: per image × batch."""
        return self.multiply_adds_per_image * self.batch_size

    @property
    def activation_bytes(self) -> int:
        """Activation memory of one step: values × batch × 4 bytes × 3 (backward, optimizer)."""
        return (
            self.activation_values_per_image
            * self.batch_size
            * FLOAT_BYTES
            * TRAINING_MEMORY_FACTOR
        )

    def max_batch(self, limits: Budgets) -> int:
        """Largest batch size within both training limits (0 when even 1 image is too much)."""
        per_image_bytes = self.activation_values_per_image * FLOAT_BYTES * TRAINING_MEMORY_FACTOR
        by_memory = limits.training_activation_bytes // max(per_image_bytes, 1)
        by_compute = limits.training_multiply_adds // max(self.multiply_adds_per_image, 1)
        return int(min(by_memory, by_compute))


def _prod(shape: Sequence[int]) -> int:
    return math.prod(int(d) for d in shape)


def training_cost(
    rows_or_stack: Sequence, input_shape: Sequence[int], batch_size: int
) -> TrainingCost:
    """The cost of one training step of a layer stack (``LayerSpec``s) or its summary rows.

    ``input_shape`` is (H, W, C); a stack is summarized with its last Dense layer's units as
    the number of classes (``summarize_stack`` raises ``InvalidModelError`` if impossible).
    """
    rows = list(rows_or_stack)
    if rows and all(isinstance(r, LayerSpec) for r in rows):
        classes = rows[-1].units if rows[-1].kind == "Dense" else 10
        rows = summarize_stack(rows, tuple(input_shape), classes, max_params=None)
    if not rows or not all(isinstance(r, SummaryRow) for r in rows):
        raise BudgetError("Give a non-empty layer stack (LayerSpec) or its summary rows.")
    if not is_whole(batch_size, 1):
        raise BudgetError(f"The batch size must be a whole number ≥ 1, got {batch_size!r}.")
    return TrainingCost(
        batch_size=batch_size,
        params=sum(r.params for r in rows),
        multiply_adds_per_image=sum(r.multiply_adds for r in rows),
        activation_values_per_image=_prod(input_shape) + sum(_prod(r.output_shape) for r in rows),
    )


def check_training(
    rows_or_stack: Sequence,
    input_shape: Sequence[int],
    batch_size: int,
    *,
    budgets: Budgets,
) -> TrainingCost:
    """``training_cost(...)``, or ``BudgetError`` when one step exceeds ``budgets``.

    The message shows the estimate and the limit, and suggests the largest batch size that
    would fit, or a smaller network when none does.
    """
    cost = training_cost(rows_or_stack, input_shape, batch_size)
    problems = []
    if cost.activation_bytes > budgets.training_activation_bytes:
        problems.append(
            f"its activations need about {format_bytes(cost.activation_bytes)} per batch of "
            f"{batch_size} (forward values × batch × 4 bytes × 3 for the backward pass), more "
            f"than the {format_bytes(budgets.training_activation_bytes)} allowed"
        )
    if cost.multiply_adds > budgets.training_multiply_adds:
        problems.append(
            f"one batch of {batch_size} needs {cost.multiply_adds:,} multiply-adds "
            f"({cost.multiply_adds_per_image:,} per image), more than the "
            f"{budgets.training_multiply_adds:,} allowed"
        )
    if not problems:
        return cost
    fit = cost.max_batch(budgets)
    advice = (
        f"Use a batch size of at most {fit}, or a smaller network (fewer filters or units, "
        "or pooling earlier)."
        if fit >= 1
        else "Even one image is too much: use fewer filters or units, or pool earlier."
    )
    raise BudgetError(f"This network is too big to train here: {'; '.join(problems)}. {advice}")
