"""Training checkpoints: one checked :class:`Checkpoint` value, its file, and its checks.

* :meth:`Checkpoint.capture`: the weights, the optimizer's state, the fit progress and every
  random-number state a resumed fit needs to repeat the draws of an uninterrupted one (torch,
  CUDA when initialised, numpy, Python's ``random``, each data loader's ``generator``).
* :meth:`Checkpoint.save`: an atomic write; a failed one (a full disk) raises
  :class:`CheckpointWriteError` naming the file, and the previous file is kept.
* :meth:`Checkpoint.load`: ``torch.load(..., weights_only=True)``, so a file cannot run code; a
  file that is not a torch archive, holds other objects, is truncated or malformed is refused
  with a ``ValueError`` naming the file and the field.
* :meth:`Checkpoint.check_fits` refuses another architecture or another run (``identity``: the
  run's settings); :meth:`Checkpoint.for_resume` reads the file a fit resumes from once, with
  these checks; :meth:`Checkpoint.restore` puts the state back.

``NAME.pt`` holds the best-accuracy state, ``NAME.last.pt`` the latest epoch's.
"""
import dataclasses
import errno
import io
import os
import pickle
import random
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence, Union

import numpy as np
import torch
import torch.nn as nn

from cs236781.atomic import atomic_write_bytes
from hw2.validation import FileWriteError, is_int, is_real, os_error_reason

__all__ = ["CHECKPOINT_FORMAT", "OLD_FORMATS", "CheckpointWriteError", "Checkpoint",
           "FIT_STATE_TYPES", "checkpoint_file", "last_checkpoint_file", "remove_checkpoints",
           "resume_file", "rng_states", "restore_rng_states", "check_torch_file",
           "check_payload", "check_identity", "plain_identity", "fit_state_problem"]

PathLike = Union[str, os.PathLike]

#: Marks checkpoint files (and their layout).
CHECKPOINT_FORMAT = "hw2.training.checkpoint/2"
#: Earlier layouts: weights and progress but no random-number states or run identity.
OLD_FORMATS = ("hw2.training.checkpoint/1",)

#: The fields of :class:`hw2.training.FitState` and the kind of value each must hold.
FIT_STATE_TYPES = {"epochs_done": "count", "train_loss": "numbers", "train_acc": "numbers",
                   "test_loss": "numbers", "test_acc": "numbers", "best_acc": "optional number",
                   "best_test_loss": "optional number", "epochs_without_improvement": "count"}

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


# -- file names ----------------------------------------------------------------------------------

def checkpoint_file(checkpoints: PathLike) -> Path:
    """The best-accuracy file of a ``checkpoints`` name: ``NAME.pt`` (``NAME.pt`` is kept).

    :raises TypeError: ``checkpoints`` is not a path.
    :raises ValueError: It is empty.
    """
    if not isinstance(checkpoints, (str, os.PathLike)) or not os.fspath(checkpoints):
        cls = ValueError if isinstance(checkpoints, (str, os.PathLike)) else TypeError
        raise cls(f"checkpoints must be a non-empty file name (without extension) or None, "
                  f"got {checkpoints!r}")
    path = Path(checkpoints)
    return path if path.suffix == ".pt" else path.with_name(path.name + ".pt")


def last_checkpoint_file(checkpoints: PathLike) -> Path:
    """The latest epoch's file of a ``checkpoints`` name: ``NAME.last.pt``."""
    best = checkpoint_file(checkpoints)
    return best.with_name(best.name[:-len(".pt")] + ".last.pt")


def remove_checkpoints(checkpoints: PathLike) -> None:
    """Delete both files of a ``checkpoints`` name (missing ones are ignored)."""
    for path in (checkpoint_file(checkpoints), last_checkpoint_file(checkpoints)):
        path.unlink(missing_ok=True)


def resume_file(checkpoints: PathLike) -> Optional[Path]:
    """The file a fit resumes from: the last file, else the best one, else None.
    :raises ValueError: One of them exists but is not a file (a folder, a device)."""
    for path in (last_checkpoint_file(checkpoints), checkpoint_file(checkpoints)):
        if path.exists() and not path.is_file():
            raise ValueError(f"checkpoint {path} is not a file (it is a folder or a device); "
                             f"remove it or choose another checkpoints name")
        if path.is_file():
            return path
    return None


# -- the value -------------------------------------------------------------------------------------

def _kind(model) -> str:
    """``'torch'`` for an ``nn.Module`` (a state_dict), ``'layers'`` for a hw2.layers model."""
    return "torch" if isinstance(model, nn.Module) else "layers"


@dataclasses.dataclass
class Checkpoint:
    """What a checkpoint file holds. ``fit_state`` and ``rng`` are None for a checkpoint
    saved outside :meth:`hw2.training.Trainer.fit` (weights only, not resumable)."""

    kind: str  # 'torch' or 'layers' (see _KIND_TEXT)
    model_class: str
    model_state: Any  # a state_dict, or a list of parameter tensors
    optimizer_state: Optional[dict]
    fit_state: Optional[Dict[str, Any]] = None
    rng: Optional[Dict[str, Any]] = None
    identity: Optional[Dict[str, Any]] = None
    path: Optional[Path] = dataclasses.field(default=None, compare=False)  # the file read

    @property
    def epochs_done(self) -> int:
        """The epochs of fit progress it holds (0 outside fit)."""
        return self.fit_state["epochs_done"] if self.fit_state is not None else 0

    @classmethod
    def capture(cls, model, optimizer, identity=None, fit_state: Optional[dict] = None,
                loaders: Sequence = ()) -> "Checkpoint":
        """The state of a training run now; the random numbers only with a ``fit_state``."""
        weights = (model.state_dict() if isinstance(model, nn.Module)
                   else [p.detach().clone() for p, _ in model.params()])
        return cls(_kind(model), type(model).__name__, weights,
                   optimizer.state_dict() if hasattr(optimizer, "state_dict") else None,
                   fit_state, rng_states(loaders) if fit_state is not None else None,
                   plain_identity(identity))

    def save(self, path: PathLike) -> None:
        """Write atomically; the archive is built in memory, so a full disk is an ``OSError``
        of the write itself. :raises CheckpointWriteError: (the old file is kept)."""
        payload = {"format": CHECKPOINT_FORMAT, "trainer_kind": self.kind,
                   **{key: getattr(self, key) for key in _PAYLOAD_KEYS[2:]}}
        buffer = io.BytesIO()
        torch.save(payload, buffer)
        path = Path(path)
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            atomic_write_bytes(path, buffer.getbuffer())
        except OSError as err:
            raise CheckpointWriteError(path, err) from err

    @classmethod
    def load(cls, path: PathLike, model=None) -> "Checkpoint":
        """Read and check a checkpoint file, to the CPU, tensors and plain values only.

        :param model: The model that will read it (an ``nn.Module`` reads a state_dict, a
            hw2.layers model a list of tensors); None: either.
        :raises ValueError: Not a torch archive, other objects inside (never unpickled),
            truncated, or malformed (see :func:`check_payload`).
        :raises OSError: It cannot be read (the message names the file).
        """
        path = Path(path)
        check_torch_file(path)
        try:  # to the CPU: torch takes random-number states only there
            payload = torch.load(path, map_location="cpu", weights_only=True)
        except pickle.UnpicklingError:
            raise ValueError(f"checkpoint {path} was refused: it holds objects other than "
                             f"tensors and plain Python values, and checkpoints are only read "
                             f"with torch.load(weights_only=True). Delete it or choose "
                             f"another checkpoints name.") from None
        except (RuntimeError, EOFError) as err:
            first = (str(err).strip().splitlines() or [type(err).__name__])[0]
            raise ValueError(f"checkpoint {path} is unreadable (truncated or not a torch "
                             f"checkpoint): {first}") from None
        except OSError as err:
            raise _read_error(path, err) from None
        check_payload(payload, path, None if model is None else _kind(model))
        return cls(payload["trainer_kind"], *(payload[key] for key in _PAYLOAD_KEYS[2:]), path)

    @classmethod
    def for_resume(cls, checkpoints: PathLike, model, identity) -> Optional["Checkpoint"]:
        """The checkpoint a fit of ``model`` resumes from (:func:`resume_file`), read once and
        checked (:meth:`check_fits`, the run's ``identity``), not yet put into ``model``: hand
        it to ``fit(..., resume=...)``. None without a file.

        :raises ValueError: Unreadable, malformed, saved outside fit (no fit progress), or of
            another kind of model, architecture or run, naming the file; OSError as :meth:`load`.
        """
        path = resume_file(checkpoints)
        if path is None:
            return None
        checkpoint = cls.load(path, model)
        if checkpoint.fit_state is None:
            raise ValueError(f"checkpoint {path} holds no fit progress (saved outside fit): "
                             f"nothing to resume; delete it or choose another checkpoints name")
        checkpoint.check_fits(model, identity)
        return checkpoint

    def check_fits(self, model, identity) -> None:
        """Refuse a checkpoint (loaded for this kind of model) of another architecture or run
        (``identity``: the reader's settings; None takes any run's checkpoint).
        :raises ValueError: Naming the file and what differs."""
        problems = _architecture_problems(model, self.model_state)
        if problems:
            raise ValueError(f"checkpoint {self.path} was saved from a different architecture "
                             f"({self.model_class} -> {type(model).__name__}): "
                             f"{'; '.join(problems[:5])}. Delete the file or choose another "
                             f"checkpoints name to start afresh.")
        check_identity(self.identity, plain_identity(identity), self.path)

    def restore(self, model, optimizer, loaders: Optional[Sequence] = None) -> None:
        """Put the optimizer's state, then the weights (a misfit optimizer state leaves the
        model as it was) and, given the fit's ``loaders``, the random-number states back.

        :raises ValueError: The optimizer state does not fit, or the loaders do not match.
        """
        if self.optimizer_state is not None and hasattr(optimizer, "load_state_dict"):
            try:
                optimizer.load_state_dict(self.optimizer_state)
            except (ValueError, KeyError, RuntimeError, TypeError) as err:
                raise ValueError(f"checkpoint {self.path}: the saved optimizer state does not fit "
                                 f"{type(optimizer).__name__}: {err}") from None
        if isinstance(model, nn.Module):
            model.load_state_dict(self.model_state)
        else:
            with torch.no_grad():
                for (p, _), saved in zip(model.params(), self.model_state):
                    p.copy_(saved)
        if self.rng is not None and loaders is not None:
            restore_rng_states(self.rng, loaders, self.path)


def _architecture_problems(model, saved) -> List[str]:
    """How the saved weights differ from the model's (names, shapes); empty when they fit."""
    if not isinstance(model, nn.Module):
        saved_shapes = [tuple(t.shape) for t in saved]
        own_shapes = [tuple(p.shape) for p, _ in model.params()]
        return [] if saved_shapes == own_shapes else [
            f"parameter shapes {saved_shapes} in the checkpoint but {own_shapes} in the model"]
    own = model.state_dict()
    problems = []
    for what, keys in (("missing", [k for k in own if k not in saved]),
                       ("unexpected", [k for k in saved if k not in own])):
        if keys:
            problems.append(f"{what} {', '.join(keys[:5])}{' ...' if len(keys) > 5 else ''}")
    for key in own:
        if key in saved and tuple(saved[key].shape) != tuple(own[key].shape):
            problems.append(f"{key} has shape {tuple(saved[key].shape)} in the checkpoint but "
                            f"{tuple(own[key].shape)} in the model")
    return problems


def _read_error(path: Path, err: OSError) -> OSError:
    """An ``OSError`` of the same kind whose message names the checkpoint ``path``."""
    return type(err)(err.errno or errno.EIO,
                     f"cannot read checkpoint {path}: {os_error_reason(err)}")


# -- random-number states -----------------------------------------------------------------------

def _loader_generator(loader) -> Optional[torch.Generator]:
    generator = getattr(loader, "generator", None)
    return generator if isinstance(generator, torch.Generator) else None


def rng_states(loaders: Sequence = ()) -> Dict[str, Any]:
    """Every random-number state a resumed fit restores (tensors and plain values only),
    with each of the ``loaders``' ``generator`` states (None for one without a generator)."""
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


def restore_rng_states(rng: Dict[str, Any], loaders: Sequence, path: PathLike) -> None:
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
            has, now = ("a", "none") if generator is None else ("no", "one")
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
        raise _read_error(path, err) from None
    if head != _ZIP_MAGIC:
        what = "it is empty" if not head else f"it starts with {head!r}, not a zip archive"
        raise ValueError(f"checkpoint {path} is not a PyTorch checkpoint ({what}, as "
                         f"torch.save writes); delete it or choose another checkpoints name")


def check_payload(payload, path: PathLike, trainer_kind: Optional[str] = None) -> None:
    """Refuse a loaded checkpoint whose layout or field types are wrong.

    :param trainer_kind: ``'layers'`` or ``'torch'``: the kind of model that will read it
        (None: either).
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


def _payload_problem(payload: dict, trainer_kind: Optional[str]) -> Optional[str]:
    if set(payload) != set(_PAYLOAD_KEYS):
        return f"expected the keys {list(_PAYLOAD_KEYS)}, got {sorted(map(str, payload))}"
    kind = payload["trainer_kind"]
    if kind not in _KIND_TEXT:
        return f"trainer_kind must be one of {sorted(_KIND_TEXT)}, got {kind!r}"
    if trainer_kind is not None and kind != trainer_kind:
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
    container = dict if kind == "torch" else list
    if not isinstance(state, container):
        return f"model_state must be a {container.__name__} of tensors, got {type(state).__name__}"
    items = state.items() if kind == "torch" else enumerate(state)
    bad = [k for k, v in items if not isinstance(v, torch.Tensor)]
    return f"model_state entries {bad[:5]} are not tensors" if bad else None


#: How each kind of :data:`FIT_STATE_TYPES` value is checked, and what the message expects.
_FIELD_CHECKS = {"count": lambda v: is_int(v) and v >= 0,
                 "numbers": lambda v: isinstance(v, list) and all(map(is_real, v)),
                 "optional number": lambda v: v is None or is_real(v)}
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
        if not _FIELD_CHECKS[kind](state[key]):
            return f"fit_state.{key} must be {_FIELD_EXPECTED[kind]}, got {state[key]!r:.60}"
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
    numpy, numpy_fields = rng["numpy"], {"kind", "keys", "pos", "has_gauss", "cached"}
    if not isinstance(numpy, dict) or set(numpy) != numpy_fields or \
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


def check_identity(saved: Optional[dict], own: Optional[dict], path: PathLike) -> None:
    """Refuse a checkpoint of another run: ``saved`` (its identity) is None or differs from
    ``own`` (the reader's; None: no claim, anything goes).

    :raises ValueError: Naming the file, and each differing key with both values.
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
