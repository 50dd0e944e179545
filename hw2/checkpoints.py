"""What a training checkpoint holds besides the weights, and how its contents are checked.

:class:`hw2.training.Trainer` writes and reads the files; this module owns their contents:

* :func:`rng_states` / :func:`restore_rng_states`: the random-number states a resumed fit
  needs to repeat the draws of an uninterrupted one: torch (CPU and, when initialised, CUDA),
  numpy, Python's ``random``, and the ``generator`` of each data loader that has one
  (:class:`~hw2.tensor_data.TensorLoader` shuffles and augments with its own generator, a
  ``DataLoader`` with ``generator=`` samples with it; a ``DataLoader`` without one draws its
  seed from the global torch generator, which is saved anyway). Every state is a tensor or a
  plain value, so the file stays loadable with ``torch.load(..., weights_only=True)``.
* :func:`check_torch_file`, :func:`check_payload`: a file that is not a torch archive, or whose
  layout, ``fit_state`` fields, types or list lengths are wrong, is refused with a
  ``ValueError`` naming the file and the field.
* :func:`check_identity`: a checkpoint records the configuration of its run (a plain dict,
  e.g. :meth:`hw2.config.ExperimentConfig.identity`) and is refused by a run whose
  configuration differs, naming the keys that differ.
* :class:`CheckpointWriteError`: a failed write (a full disk), as one ``OSError`` naming the
  file.
"""
import errno
import random
from numbers import Real
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence

import numpy as np
import torch

from hw2.validation import FileWriteError, os_error_reason

__all__ = ["CHECKPOINT_FORMAT", "OLD_FORMATS", "CheckpointWriteError", "FIT_STATE_TYPES",
           "rng_states", "restore_rng_states", "check_torch_file", "check_payload",
           "check_identity", "plain_identity", "read_error", "fit_state_problem"]

#: Marks files written by :meth:`hw2.training.Trainer.save_checkpoint` (and their layout).
CHECKPOINT_FORMAT = "hw2.training.checkpoint/2"
#: Earlier layouts: weights and progress but no random-number states or run identity.
OLD_FORMATS = ("hw2.training.checkpoint/1",)

#: The fields of :class:`hw2.training.FitState` and the kind of value each must hold.
FIT_STATE_TYPES = {
    "epochs_done": "count", "train_loss": "numbers", "train_acc": "numbers",
    "test_loss": "numbers", "test_acc": "numbers", "best_acc": "optional number",
    "best_test_loss": "optional number", "epochs_without_improvement": "count",
}

_ZIP_MAGIC = b"PK\x03\x04"  # torch.save writes a zip archive
_PAYLOAD_KEYS = ("format", "trainer_kind", "model_class", "model_state", "optimizer_state",
                 "fit_state", "rng", "identity")
_KIND_TEXT = {"layers": "a LayerTrainer (hw2.layers model: a list of parameter tensors)",
              "torch": "a ClassifierTrainer (torch.nn.Module: a state_dict)"}


class CheckpointWriteError(FileWriteError):
    """A checkpoint could not be written; the file of that name (if any) is unchanged."""

    def __init__(self, path: Path, err: OSError):
        kept = ("the file as it was, the last good checkpoint, is kept" if Path(path).is_file()
                else "no earlier checkpoint of that name exists")
        super().__init__(path, err, f"cannot write checkpoint {path}: {os_error_reason(err)}; "
                                    f"{kept}")


def read_error(path: Path, err: OSError) -> OSError:
    """An ``OSError`` of the same kind whose message names the checkpoint ``path``."""
    return type(err)(err.errno or errno.EIO,
                     f"cannot read checkpoint {path}: {os_error_reason(err)}")


# -- random-number states -----------------------------------------------------------------------

def _loader_generator(loader) -> Optional[torch.Generator]:
    generator = getattr(loader, "generator", None)
    return generator if isinstance(generator, torch.Generator) else None


def rng_states(loaders: Sequence = ()) -> Dict[str, Any]:
    """Every random-number state a resumed fit restores (tensors and plain values only).

    :param loaders: Data loaders; the state of each one's ``generator`` (None without one).
    """
    kind, keys, pos, has_gauss, cached = np.random.get_state()
    version, internal, gauss_next = random.getstate()
    return {
        "torch": torch.get_rng_state(),
        "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_initialized() else None,
        "numpy": {"kind": str(kind), "keys": torch.from_numpy(keys.astype(np.int64)),
                  "pos": int(pos), "has_gauss": int(has_gauss), "cached": float(cached)},
        "python": [int(version), list(internal), gauss_next],
        "loaders": [None if (g := _loader_generator(dl)) is None else g.get_state()
                    for dl in loaders],
    }


def restore_rng_states(rng: Dict[str, Any], loaders: Sequence, path: Path) -> None:
    """Set the states :func:`rng_states` saved (checked by :func:`check_payload`).

    The CUDA states are restored for the GPUs this process sees (those beyond are dropped).

    :raises ValueError: The checkpoint's loaders do not match ``loaders`` (one shuffles
        with a generator and the other does not), so the resumed batches would differ.
    """
    saved = rng["loaders"]
    if len(saved) != len(loaders):
        raise ValueError(f"checkpoint {path} holds the states of {len(saved)} data loader(s), "
                         f"but {len(loaders)} are training now")
    generators = [_loader_generator(dl) for dl in loaders]
    for i, (state, generator) in enumerate(zip(saved, generators)):
        if (state is None) != (generator is None):
            has = "a" if state is not None else "no"
            now = "none" if generator is None else "one"
            raise ValueError(f"checkpoint {path} holds {has} generator state for data loader "
                             f"{i + 1} but that loader has {now} now: the resumed batches "
                             f"would not be the ones of the interrupted run")
    torch.set_rng_state(rng["torch"])
    if rng["cuda"] is not None and torch.cuda.is_available():
        # One state per GPU the saving process saw; this one may see fewer (another node).
        for index, state in enumerate(rng["cuda"][:torch.cuda.device_count()]):
            torch.cuda.set_rng_state(state, index)
    numpy = rng["numpy"]
    np.random.set_state((numpy["kind"], numpy["keys"].numpy().astype(np.uint32), numpy["pos"],
                         numpy["has_gauss"], numpy["cached"]))
    version, internal, gauss_next = rng["python"]
    random.setstate((version, tuple(internal), gauss_next))
    for state, generator in zip(saved, generators):
        if generator is not None:
            generator.set_state(state)


# -- checking a file and its contents ------------------------------------------------------------

def check_torch_file(path: Path) -> None:
    """Refuse a file that is not a torch archive before ``torch.load`` sees it.

    :raises ValueError: It is empty or does not start like a ``torch.save`` zip archive.
    :raises OSError: It cannot be read (the message names the file).
    """
    try:
        with open(path, "rb") as f:
            head = f.read(len(_ZIP_MAGIC))
    except OSError as err:
        raise read_error(path, err) from None
    if head != _ZIP_MAGIC:
        what = "it is empty" if not head else f"it starts with {head!r}, not a zip archive"
        raise ValueError(f"checkpoint {path} is not a PyTorch checkpoint ({what}, as "
                         f"torch.save writes); delete it or choose another checkpoints name")


def check_payload(payload, path: Path, trainer_kind: str) -> None:
    """Refuse a loaded checkpoint whose layout or field types are wrong.

    :param trainer_kind: ``'layers'`` or ``'torch'``: the reading trainer's kind of model.
    :raises ValueError: Naming the file and what is wrong.
    """
    if not isinstance(payload, dict) or payload.get("format") not in (CHECKPOINT_FORMAT,
                                                                      *OLD_FORMATS):
        raise ValueError(f"{path} is not a checkpoint written by hw2.training.Trainer")
    if payload["format"] in OLD_FORMATS:
        raise ValueError(f"checkpoint {path} has the older layout {payload['format']} (no "
                         f"random-number states or run configuration), so it cannot be resumed "
                         f"exactly; delete it to start afresh")
    problem = _payload_problem(payload, trainer_kind)
    if problem:
        raise ValueError(f"checkpoint {path} is malformed: {problem}")


def _payload_problem(payload: dict, trainer_kind: str) -> Optional[str]:
    if set(payload) != set(_PAYLOAD_KEYS):
        return f"expected the keys {list(_PAYLOAD_KEYS)}, got {sorted(map(str, payload))}"
    kind = payload["trainer_kind"]
    if kind not in _KIND_TEXT:
        return f"trainer_kind must be one of {sorted(_KIND_TEXT)}, got {kind!r}"
    if kind != trainer_kind:
        return (f"it was written by {_KIND_TEXT[kind]} and cannot be read by "
                f"{_KIND_TEXT[trainer_kind]}")
    problem = _model_state_problem(payload["model_state"], kind)
    if problem is None and payload["fit_state"] is not None:
        problem = fit_state_problem(payload["fit_state"]) or _rng_problem(payload["rng"])
    identity = payload["identity"]
    if problem is None and identity is not None:
        if not isinstance(identity, dict):
            return f"identity must be a dict or None, got {type(identity).__name__}"
        try:
            plain_identity(identity)
        except TypeError as err:
            problem = str(err)
    return problem


def _model_state_problem(state, kind: str) -> Optional[str]:
    if kind == "torch":
        if not isinstance(state, dict):
            return f"model_state must be a dict of tensors, got {type(state).__name__}"
        bad = [k for k, v in state.items() if not isinstance(v, torch.Tensor)]
    else:
        if not isinstance(state, list):
            return f"model_state must be a list of tensors, got {type(state).__name__}"
        bad = [i for i, v in enumerate(state) if not isinstance(v, torch.Tensor)]
    return f"model_state entries {bad[:5]} are not tensors" if bad else None


def _is_number(value) -> bool:
    return isinstance(value, Real) and not isinstance(value, bool)


#: How each kind of :data:`FIT_STATE_TYPES` value is checked, and what the message expects.
_FIELD_CHECKS = {"count": lambda v: isinstance(v, int) and not isinstance(v, bool) and v >= 0,
                 "numbers": lambda v: isinstance(v, list) and all(map(_is_number, v)),
                 "optional number": lambda v: v is None or _is_number(v)}
_FIELD_EXPECTED = {"count": "an integer >= 0", "numbers": "a list of numbers",
                   "optional number": "a number or None"}


def fit_state_problem(state) -> Optional[str]:
    """What is wrong with a saved ``fit_state`` (fields, types, list lengths), or None."""
    if not isinstance(state, dict):
        return f"fit_state must be a dict, got {type(state).__name__}"
    if set(state) != set(FIT_STATE_TYPES):
        missing = sorted(set(FIT_STATE_TYPES) - set(state))
        extra = sorted(map(str, set(state) - set(FIT_STATE_TYPES)))
        return f"fit_state fields differ: missing {missing}, unexpected {extra}"
    for key, kind in FIT_STATE_TYPES.items():
        value = state[key]
        if not _FIELD_CHECKS[kind](value):
            return f"fit_state.{key} must be {_FIELD_EXPECTED[kind]}, got {value!r:.60}"
    n = state["epochs_done"]
    for key in ("train_acc", "test_acc"):
        if len(state[key]) != n:
            return f"fit_state.{key} has {len(state[key])} entries for epochs_done={n}"
    for key in ("train_loss", "test_loss"):
        if len(state[key]) < n:
            return (f"fit_state.{key} has {len(state[key])} entries, fewer than one per epoch "
                    f"(epochs_done={n})")
    return None


def _rng_problem(rng) -> Optional[str]:
    if not isinstance(rng, dict) or set(rng) != {"torch", "cuda", "numpy", "python", "loaders"}:
        return "rng must be a dict of the torch, cuda, numpy, python and loaders states"
    if not isinstance(rng["torch"], torch.Tensor) or rng["torch"].dtype != torch.uint8:
        return "rng.torch must be a uint8 tensor (torch.get_rng_state())"
    cuda = rng["cuda"]
    if cuda is not None and (not isinstance(cuda, (list, tuple)) or not all(
            isinstance(s, torch.Tensor) and s.dtype == torch.uint8 for s in cuda)):
        return "rng.cuda must be None or a list of uint8 tensors (torch.cuda.get_rng_state_all())"
    numpy = rng["numpy"]
    if not isinstance(numpy, dict) or set(numpy) != {"kind", "keys", "pos", "has_gauss",
                                                     "cached"} or \
            not isinstance(numpy["keys"], torch.Tensor):
        return "rng.numpy must hold kind, keys (a tensor), pos, has_gauss and cached"
    python = rng["python"]
    if not isinstance(python, (list, tuple)) or len(python) != 3 or \
            not isinstance(python[1], (list, tuple)):
        return "rng.python must be [version, internal state, gauss_next]"
    loaders = rng["loaders"]
    if not isinstance(loaders, list) or not all(
            s is None or isinstance(s, torch.Tensor) for s in loaders):
        return "rng.loaders must be a list of generator states (tensors or None)"
    return None


# -- the run's identity --------------------------------------------------------------------------

def plain_identity(identity) -> Optional[Dict[str, Any]]:
    """``identity`` as plain values (tuples become lists), for saving and comparing.

    :raises TypeError: It is not a dict with string keys of None, bool, numbers, strings,
        lists, tuples and dicts.
    """
    if identity is None:
        return None
    if not isinstance(identity, dict):
        raise TypeError(f"identity must be a dict of the run's settings or None, got "
                        f"{type(identity).__name__}")
    return _plain(identity, "identity")


def _plain(value, where: str):
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    if isinstance(value, (np.integer, np.floating, np.bool_)):
        return value.item()
    if isinstance(value, (list, tuple)):
        return [_plain(v, f"{where}[{i}]") for i, v in enumerate(value)]
    if isinstance(value, dict) and all(isinstance(k, str) for k in value):
        return {k: _plain(v, f"{where}[{k!r}]") for k, v in value.items()}
    raise TypeError(f"{where} must hold plain values (None, bool, numbers, strings, lists, "
                    f"dicts with string keys), got {value!r:.60}")


def check_identity(saved: Optional[dict], own: Optional[dict], path: Path) -> None:
    """Refuse a checkpoint of another run.

    :param saved: The identity stored in the checkpoint.
    :param own: The reading trainer's (None: the caller makes no claim; anything goes).
    :raises ValueError: ``own`` is given and the checkpoint records none, or a key differs
        (each differing key is named with both values).
    """
    if own is None:
        return
    if saved is None:
        raise ValueError(f"checkpoint {path} records no run configuration, so it cannot be "
                         f"told apart from another run's; delete it or choose another "
                         f"checkpoints name")
    saved, own = _plain(saved, "identity"), _plain(own, "identity")
    differ: List[str] = [f"{key}={_shown(saved, key)} in the checkpoint but {_shown(own, key)} now"
                         for key in sorted(set(saved) | set(own))
                         if saved.get(key, _ABSENT) != own.get(key, _ABSENT)]
    if differ:
        raise ValueError(f"checkpoint {path} belongs to another run: {'; '.join(differ)}. "
                         f"Delete it or choose another checkpoints name.")


_ABSENT = object()


def _shown(identity: dict, key: str) -> str:
    return repr(identity[key]) if key in identity else "<absent>"

