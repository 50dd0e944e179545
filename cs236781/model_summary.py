"""Layer-by-layer model summaries (layer, output shape, parameter count) via torchinfo."""
import re
from typing import Iterable, Sequence, Union

import torch
import torch.nn as nn
from torchinfo import ModelStatistics, summary

from hw2.validation import check_instance, check_int, check_int_list

__all__ = ["summarize", "ModelSummary"]

DEFAULT_COLUMNS = ("output_size", "num_params")


class ModelSummary(ModelStatistics):
    """torchinfo's statistics, printed with the multiply-adds in plain words.

    torchinfo prints ``Total mult-adds (Units.MEGABYTES): 0.57`` on recent Pythons: an enum's
    name, and a unit of bytes for a count of operations. This prints
    ``Total mult-adds (millions): 0.57`` instead; everything else is torchinfo's.
    """

    def __repr__(self) -> str:
        text = super().__repr__()
        return re.sub(r"^Total mult-adds.*$", lambda _: self.mult_adds_line(), text, flags=re.M)

    def mult_adds_line(self) -> str:
        """``Total mult-adds (<millions|billions|trillions>): <count>``, two decimals."""
        count = float(self.total_mult_adds)
        for unit, scale in (("trillions", 1e12), ("billions", 1e9), ("millions", 1e6)):
            if count >= scale or unit == "millions":
                return f"Total mult-adds ({unit}): {count / scale:,.2f}"


def summarize(
    model: nn.Module,
    input_size: Sequence[int],
    device: Union[str, torch.device] = "cpu",
    batch_size: int = 1,
    col_names: Iterable[str] = DEFAULT_COLUMNS,
    depth: int = 3,
) -> ModelStatistics:
    """Summarise ``model`` by running one dummy batch through it.

    ``print(summarize(...))`` shows a table of every layer with its output shape and number of
    parameters, followed by the totals; the returned object also exposes them as attributes
    (``total_params``, ``trainable_params``, ``summary_list``).

    :param model: The network to summarise. It is not moved: pass the ``device`` it lives on.
    :param input_size: Shape of ONE sample, without the batch dimension, e.g. ``(1, 28, 28)``
        for an MNIST image or ``(784,)`` for a flattened one.
    :param device: Device of the model and of the dummy batch.
    :param batch_size: Batch size of the dummy batch (the first entry of every output shape).
    :param col_names: torchinfo columns to show.
    :param depth: How many levels of nested modules to list.
    :return: torchinfo's ``ModelStatistics`` for the model (as a :class:`ModelSummary`).
    :raises TypeError: If ``model`` is not an ``nn.Module``, ``input_size`` not a sequence of
        integers or ``batch_size`` not an integer.
    :raises ValueError: If ``input_size`` is empty or holds a size < 1, or ``batch_size`` < 1.
    """
    check_instance("model", model, nn.Module, "a torch.nn.Module")
    input_size = check_int_list("input_size", input_size, allow_empty=False, expected=(
        "the shape of one sample (positive integers, no batch dimension)"))
    batch_size = check_int("batch_size", batch_size, 1)
    stats = summary(
        model,
        input_size=(batch_size, *input_size),
        device=device,
        col_names=tuple(col_names),
        depth=depth,
        verbose=0,
    )
    stats.__class__ = ModelSummary  # same data, the printing above
    return stats
