"""Errors and argument checks shared by every hw2 module, and the one policy they serve.

The policy:

* **Check a value once, where it enters**: in :class:`hw2.config.ExperimentConfig`, in the
  public constructors (layers, models, optimizers, trainers, loaders), and in the public
  functions students call with their own data (``plot_decision_boundary_2d``,
  ``select_roc_thresh``, the losses' labels). Code that receives a value from one of those
  trusts it and does not check it again.
* **Check with the helpers below**, never with a local re-implementation; a module that needs
  a new kind of check adds one small function here.
* **Say what was expected and what was received**, and name the argument:
  ``"{name} must be {expected}, got {value!r}"``. A value of the wrong type raises
  ``TypeError``; a value of the right type that is out of range raises ``ValueError``.
* **Never match the text of another library's message.** An error that torch raises clearly
  inside an ``nn.Module`` (a float64 batch into a float32 convolution, three channels into a
  one-channel network) reaches the user as torch's own; one that torch raises unclearly is
  prevented by checking the value where it enters, not by rewording torch's message.
* **The command line turns every user mistake into one line and exit status 2** (see
  :mod:`hw2.cli`), and never leaves a half-written file behind.

Details of the helpers: numpy scalars are accepted wherever Python numbers are (``np.int64``
is an ``Integral``, ``np.float32`` a ``Real``); ``bool`` is never accepted as a number, and
``np.bool_`` is accepted wherever ``bool`` is; every check returns the value as a plain Python
object (``int``, ``float``, ``bool``, ``list``, ``dict``).

The errors of the experiment pipeline live here too, below every module that raises them, and
so do the parsers of command-line values (``--batches``, ``--early-stopping``, ``--model-kw``)
that :mod:`hw2.config` gives argparse.
"""
import argparse
import json
import math
from numbers import Integral, Real
from typing import Any, Callable, Collection, List, Optional, Tuple

import numpy as np

__all__ = [
    "UsageError", "ExperimentConfigError", "ExperimentConfigTypeError", "config_error",
    "FileWriteError", "os_error_reason",
    "is_int", "is_real", "is_bool",
    "check_int", "check_real", "check_bool", "check_choice", "check_int_list", "check_optional",
    "check_instance", "check_text", "int_expected",
    "MODEL_KW_FORMS", "parse_model_value", "ModelArgumentError", "parse_model_kw",
    "parse_batches", "parse_patience", "check_interval", "check_device", "check_kwargs",
    "check_tensor",
]


class UsageError(Exception):
    """A command-line request that cannot be carried out (reported with exit status 2)."""


class ExperimentConfigError(ValueError):
    """An experiment configuration that cannot run (found before any training starts)."""


class ExperimentConfigTypeError(ExperimentConfigError, TypeError):
    """An experiment setting of the wrong type: an :class:`ExperimentConfigError` that is also
    a ``TypeError``, as the package's rule asks for a wrong type."""


def config_error(err: Exception, prefix: str = "") -> ExperimentConfigError:
    """The :class:`ExperimentConfigError` flavour of a check's ``TypeError``/``ValueError``."""
    cls = ExperimentConfigTypeError if isinstance(err, TypeError) else ExperimentConfigError
    return cls(f"{prefix}{err}")


# -- predicates ------------------------------------------------------------------------------

def is_int(value) -> bool:
    """Whether ``value`` is an integer (Python or numpy), ``bool`` excluded."""
    return isinstance(value, Integral) and not isinstance(value, (bool, np.bool_))


def is_real(value) -> bool:
    """Whether ``value`` is a real number (Python or numpy), ``bool`` excluded."""
    return isinstance(value, Real) and not isinstance(value, (bool, np.bool_))


def is_bool(value) -> bool:
    """Whether ``value`` is ``True``/``False`` (Python or numpy)."""
    return isinstance(value, (bool, np.bool_))


# -- checks ------------------------------------------------------------------------------------

def _fail(cls, name: str, expected: str, value) -> Exception:
    return cls(f"{name} must be {expected}, got {value!r}")


def _bound(number: float) -> str:
    """A bound as a message writes it: ``0`` for ``0.0``, ``0.5``, ``1e-07``, ``inf``."""
    number = float(number)
    return str(int(number)) if number.is_integer() else str(number)


def _interval(low: float, high: float, low_open: bool, high_open: bool) -> str:
    """An interval as a message writes it, e.g. ``[0, 1)``."""
    return f"{'(' if low_open else '['}{_bound(low)}, {_bound(high)}{')' if high_open else ']'}"


def int_expected(minimum: Optional[int] = None, maximum: Optional[int] = None) -> str:
    """What :func:`check_int` says it expects by default: ``an integer``, ``an integer >= 1``,
    ``an integer <= 9`` or ``an integer >= 0 and <= 9`` (for a message that adds to it, e.g.
    ``... or None``)."""
    bounds = ([f">= {minimum}"] if minimum is not None else []) + (
        [f"<= {maximum}"] if maximum is not None else [])
    return " ".join(["an integer", " and ".join(bounds)]).rstrip()


def check_int(name: str, value, minimum: Optional[int] = None, maximum: Optional[int] = None,
              expected: Optional[str] = None) -> int:
    """``value`` as an ``int`` in ``[minimum, maximum]`` (either bound may be None).

    :param name: The argument's name, for the message.
    :param expected: What the message says is expected (default: :func:`int_expected`).
    :raises TypeError: ``value`` is not an integer (``bool`` and ``2.0`` included).
    :raises ValueError: It is out of range.
    """
    if expected is None:
        expected = int_expected(minimum, maximum)
    if not is_int(value):
        raise _fail(TypeError, name, expected, value)
    if (minimum is not None and value < minimum) or (maximum is not None and value > maximum):
        raise _fail(ValueError, name, expected, value)
    return int(value)


def check_real(name: str, value, minimum: Optional[float] = None, strict: bool = False,
               maximum: Optional[float] = None, finite: bool = True,
               expected: Optional[str] = None) -> float:
    """``value`` as a ``float`` above ``minimum`` (``>`` when ``strict``, else ``>=``) and at
    most ``maximum`` (either bound may be None).

    :param finite: Refuse NaN and infinities.
    :param expected: What the message says is expected (default from the bounds: ``a finite
        number > 0.0``, ``a finite number <= 1.0``, or with both bounds the interval, ``a number
        in (0, 1]``).
    :raises TypeError: ``value`` is not a real number.
    :raises ValueError: It is NaN, infinite (when ``finite``) or out of range.
    """
    if expected is None and minimum is not None and maximum is not None:
        bounded = math.isfinite(minimum) and math.isfinite(maximum)
        expected = (f"{'a finite number' if finite and not bounded else 'a number'} in "
                    f"{_interval(minimum, maximum, low_open=strict, high_open=False)}")
    elif expected is None:
        expected = "a finite number" if finite else "a number"
        if minimum is not None:
            expected += f" {'>' if strict else '>='} {minimum}"
        if maximum is not None:
            expected += f" <= {maximum}"
    if not is_real(value):
        raise _fail(TypeError, name, expected, value)
    number = float(value)
    bad = (math.isnan(number) or (finite and math.isinf(number))
           or (minimum is not None and (number <= minimum if strict else number < minimum))
           or (maximum is not None and number > maximum))
    if bad:
        raise _fail(ValueError, name, expected, value)
    return number


def check_bool(name: str, value, expected: str = "True or False") -> bool:
    """``value`` as a ``bool``; anything else (``1``, ``'yes'``) is a ``TypeError``."""
    if not is_bool(value):
        raise _fail(TypeError, name, expected, value)
    return bool(value)


def check_choice(name: str, value, choices: Collection, normalise: Optional[Callable] = None,
                 kind: type = str, expected: Optional[str] = None):
    """``value`` (after ``normalise``, e.g. ``str.lower``) if it is one of ``choices``.

    :param kind: The type of the choices: ``str`` (names), or another, e.g. ``torch.dtype``.
    :param expected: What the message says is expected (default: ``one of a, b``).
    :raises TypeError: ``value`` is not of type ``kind``.
    :raises ValueError: It is not one of the choices.
    """
    if expected is None:
        expected = f"one of {', '.join(map(str, choices))}"
    if not isinstance(value, kind):
        raise _fail(TypeError, name, expected, value)
    choice = value if normalise is None else normalise(value)
    if choice not in choices:
        raise _fail(ValueError, name, expected, value)
    return choice


def check_int_list(name: str, values, minimum: int = 1, allow_empty: bool = True,
                   expected: Optional[str] = None, maximum: Optional[int] = None,
                   lengths: Optional[Collection[int]] = None) -> List[int]:
    """``values`` as a list of ints in ``[minimum, maximum]``; entries are named ``name[i]``
    (an entry's message names both bounds).

    :param lengths: The numbers of entries accepted, e.g. ``(2, 3)`` for ``(H, W)`` or
        ``(C, H, W)`` (any number when None).
    :raises TypeError: ``values`` is not a sequence (a string is not one), or an entry is not
        an integer.
    :raises ValueError: It is empty (unless ``allow_empty``), has a number of entries not in
        ``lengths``, or an entry is out of range.
    """
    if expected is None:
        what = "positive integers" if minimum == 1 else f"integers >= {minimum}"
        count = "" if lengths is None else " or ".join(map(str, lengths)) + " "
        expected = f"a list of {count}{what}" + ("" if allow_empty else " (at least one)")
    if isinstance(values, (str, bytes)) or not hasattr(values, "__len__") or \
            not hasattr(values, "__getitem__"):
        raise _fail(TypeError, name, expected, values)
    if (len(values) == 0 and not allow_empty) or (lengths is not None
                                                  and len(values) not in lengths):
        raise _fail(ValueError, name, expected, values)
    return [check_int(f"{name}[{i}]", v, minimum=minimum, maximum=maximum)
            for i, v in enumerate(values)]


def check_optional(check: Callable[..., Any], name: str, value, *args, **kwargs):
    """``None`` for ``None``, else ``check(name, value, *args, **kwargs)``."""
    return None if value is None else check(name, value, *args, **kwargs)


def check_instance(name: str, value, kind, expected: str):
    """``value`` if it is an instance of ``kind`` (a type or a tuple of types), e.g. a model
    that must be a ``torch.nn.Module``; the message names the type received, not its repr (a
    model's or an array's repr is many lines).

    :raises TypeError: It is not.
    """
    if not isinstance(value, kind):
        raise TypeError(f"{name} must be {expected}, got {type(value).__name__}")
    return value


# -- command-line text ---------------------------------------------------------------------

#: What ``--model-kw KEY=VALUE`` accepts as VALUE (named in every refusal).
MODEL_KW_FORMS = ("True/true, False/false, None/null, an integer, a finite number, a JSON list "
                  "or object of those, a quoted JSON string, or a plain word such as lrelu")
_CONSTANTS = {"true": True, "false": False, "none": None, "null": None}
# Words that look like a boolean or None but are not spelled as one: refused, not kept as text.
_AMBIGUOUS_WORDS = {"yes", "no", "on", "off", "y", "n", "t", "f", "nil", "nan", "inf",
                    "infinity", "-inf"}


def _finite_json(value) -> bool:
    """Whether a parsed JSON value holds only finite numbers (``NaN``/``Infinity`` refused)."""
    if isinstance(value, float):
        return value == value and abs(value) != float("inf")
    if isinstance(value, list):
        return all(map(_finite_json, value))
    if isinstance(value, dict):
        return all(map(_finite_json, value.values()))
    return True


def parse_model_value(text: str) -> Any:
    """One ``--model-kw`` VALUE (command-line text): see :data:`MODEL_KW_FORMS`.

    :raises ValueError: Anything else (e.g. ``yes``, ``1,2``, an empty value, a broken list),
        with a message naming the accepted forms.
    """
    word = text.strip()
    if word.lower() in _CONSTANTS and (word in ("True", "False", "None")
                                       or word == word.lower()):
        return _CONSTANTS[word.lower()]
    try:
        value = json.loads(word)
    except json.JSONDecodeError:
        if word.isidentifier() and word.lower() not in _CONSTANTS | dict.fromkeys(
                _AMBIGUOUS_WORDS):
            return word
        raise ValueError(f"model argument value must be {MODEL_KW_FORMS}; got {text!r}") \
            from None
    if not _finite_json(value):
        raise ValueError(f"model argument value must be {MODEL_KW_FORMS} (NaN and infinity "
                         f"are refused); got {text!r}")
    return value


def parse_batches(text: str) -> Optional[int]:
    """``--batches``: a positive count, or 0 / 'all' for whole epochs (None)."""
    if text.strip().lower() in ("0", "all"):
        return None
    value = int(text)
    if value < 1:
        raise ValueError(text)
    return value


parse_batches.__name__ = "batch count (a positive integer, or 0/all)"


def parse_patience(text: str) -> Optional[int]:
    """``--early-stopping``: a positive number of epochs, or 0 to never stop early (None)."""
    value = int(text)
    if value < 0:
        raise ValueError(text)
    return value or None


parse_patience.__name__ = "epoch count (a positive integer, or 0 for no early stopping)"


def os_error_reason(err: OSError) -> str:
    """The reason an ``OSError`` gives (``strerror``, else its text, else its class name)."""
    return err.strerror or str(err) or type(err).__name__


class FileWriteError(OSError):
    """A file could not be written: an ``OSError`` with the failure's errno, whose text is
    ``message`` (naming the file) and whose ``path`` is the file. It pickles, although its
    ``__init__`` takes other arguments than ``OSError``'s (subclasses build ``message``)."""

    def __init__(self, path, err: OSError, message: str):
        super().__init__(err.errno, message)
        self.path = path

    def __str__(self) -> str:
        return self.strerror

    def __reduce__(self):
        return _rebuild_os_error, (type(self), self.args, self.__dict__)


def _rebuild_os_error(cls, args: tuple, attrs: dict) -> OSError:
    """Unpickle a :class:`FileWriteError` subclass: ``OSError``'s fields, then the others."""
    err = cls.__new__(cls)
    OSError.__init__(err, *args)
    err.__dict__.update(attrs)
    return err


class ModelArgumentError(argparse.ArgumentTypeError, ValueError):
    """A malformed ``--model-kw`` pair: a ``ValueError`` whose message argparse prints as is."""


def parse_model_kw(text: str) -> Tuple[str, Any]:
    """``--model-kw KEY=VALUE``: KEY an argument name, VALUE one of :data:`MODEL_KW_FORMS`.

    :raises argparse.ArgumentTypeError: For a malformed pair, naming the accepted forms.
    """
    key, sep, value = text.partition("=")
    if not sep or not key.isidentifier():
        raise ModelArgumentError(f"expected KEY=VALUE with KEY an argument name, got "
                                         f"{text!r}")
    try:
        return key, parse_model_value(value)
    except ValueError as err:
        raise ModelArgumentError(f"{key}: {err}") from None


parse_model_kw.__name__ = "KEY=VALUE model argument"


def check_interval(name: str, value, low: float, high: float, low_open: bool = False,
                   high_open: bool = False) -> float:
    """``value`` as a ``float`` between ``low`` and ``high``, each end included unless its
    ``*_open`` flag says otherwise; the message writes the interval out, e.g. ``[0, 1)``.

    :raises TypeError: ``value`` is not a real number.
    :raises ValueError: It is NaN or outside the interval.
    """
    expected = f"a number in {_interval(low, high, low_open, high_open)}"
    number = check_real(name, value, finite=False, expected=expected)
    if (number <= low if low_open else number < low) or (number >= high if high_open
                                                         else number > high):
        raise _fail(ValueError, name, expected, value)
    return number


def check_device(name: str, value):
    """``value`` as a ``torch.device`` (from a device, a string such as ``'cuda:0'`` or a CUDA
    index), or None.

    :raises TypeError: It is none of these.
    :raises ValueError: A string or index torch does not accept as a device.
    """
    import torch  # here only: the other checks need no torch

    if value is None or isinstance(value, torch.device):
        return value
    expected = "a torch.device, a string such as 'cpu' or 'cuda:0', or None"
    if not isinstance(value, str) and not is_int(value):
        raise _fail(TypeError, name, expected, value)
    try:
        return torch.device(value)
    except RuntimeError as err:
        raise ValueError(f"{name} must be {expected}, got {value!r}: {err}") from None


def check_kwargs(name: str, value, flags: Collection[str] = (),
                 allowed: Optional[Collection[str]] = None) -> dict:
    """``value`` as a new dict of keyword arguments (``{}`` for None); the entries named in
    ``flags`` must be booleans (torch would take any truthy value for ``bias=``).

    :param allowed: The only keys accepted (any key when None).
    :raises TypeError: ``value`` is not a dict, holds a key not ``allowed``, or a flag is not
        ``True``/``False``.
    """
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise _fail(TypeError, name, "a dict of keyword arguments or None", value)
    if allowed is not None and set(value) - set(allowed):
        raise TypeError(f"{name} may only hold {', '.join(allowed)}, got the unexpected keyword "
                        f"argument(s) {', '.join(sorted(set(value) - set(allowed)))}")
    for flag in set(flags) & set(value):
        check_bool(f"{name}[{flag!r}]", value[flag])
    return dict(value)


def check_tensor(name: str, value, floating: bool = True):
    """``value`` if it is a ``torch.Tensor`` (of a floating-point dtype when ``floating``).

    :raises TypeError: It is not a tensor, or not a floating-point one.
    """
    import torch  # here only: the other checks need no torch

    if not isinstance(value, torch.Tensor):
        raise TypeError(f"{name} must be a torch.Tensor, got {type(value).__name__}")
    if floating and not value.is_floating_point():
        raise TypeError(f"{name} must be a floating-point tensor, got dtype {value.dtype}")
    return value


def check_text(name: str, value, expected: str = "a non-empty string") -> str:
    """``value`` if it is a string with something besides white space.

    :raises TypeError: It is not a string.
    :raises ValueError: It is empty or only white space.
    """
    if not isinstance(value, str):
        raise _fail(TypeError, name, expected, value)
    if not value.strip():
        raise _fail(ValueError, name, expected, value)
    return value
