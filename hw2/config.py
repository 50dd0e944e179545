"""The configuration of one Part 5 run: a frozen dataclass that is the single source of truth.

Each field of :class:`ExperimentConfig` carries its type, default, check, command-line flag(s)
and help text (an :class:`Option` in the field's metadata). Everything else is derived from
those fields:

* validation: a wrong type raises :class:`~hw2.validation.ExperimentConfigTypeError`, a bad
  value :class:`~hw2.validation.ExperimentConfigError`;
* the ``run-exp`` arguments and the grid-override arguments (:func:`add_arguments`, the latter
  with ``argparse.SUPPRESS`` for "not given"), and :meth:`ExperimentConfig.from_args`;
* the command line that repeats a run (:meth:`ExperimentConfig.to_argv`), which parses back
  to the same configuration;
* :data:`EXPERIMENT_PARAMS`, the result file's ``config`` (:meth:`ExperimentConfig.to_dict`)
  and the keys that identify a run (:meth:`ExperimentConfig.identity`, for checkpoints);
* the keyword arguments of :func:`hw2.experiments.cnn_experiment` beyond the course's own
  (:meth:`ExperimentConfig.from_kwargs`), and the grids' runs (:meth:`ExperimentConfig.replace`).

Adding a run parameter is adding one field here and using it where the run is built
(``cnn_experiment``); ``run-exp``, the grid commands, result files and checkpoints follow.
"""
import argparse
import copy
import dataclasses
import json
import os
import random
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple


from cs236781.atomic import TEMP_NAME_EXTRA
from hw2.cnn import CNN, ResNet, YourCNN
from hw2.datasets import DATASET_NAMES, default_dataset_name
from hw2.results import result_filename
from hw2.validation import (
    ExperimentConfigError, ExperimentConfigTypeError, check_bool, check_choice, check_device,
    check_instance, check_int, check_int_list, check_kwargs, check_optional, check_real,
    check_text, config_error, int_expected, parse_batches, parse_model_kw, parse_patience,
)

__all__ = [
    "MODEL_TYPES", "MODEL_TYPE_NAMES", "LOADERS", "EXPERIMENT_PARAMS", "GRID_OVERRIDES", "Option",
    "ExperimentConfig", "expand_channels", "add_arguments", "SEED_MAX", "SIZE_MAX", "NAME_MAX",
]

#: ``model_type`` names and the classes they build.
MODEL_TYPES: Dict[str, type] = {"cnn": CNN, "resnet": ResNet, "ycn": YourCNN}
MODEL_TYPE_NAMES = tuple(MODEL_TYPES)
#: Data paths: the tensor-resident :class:`~hw2.tensor_data.TensorLoader` or torchvision's
#: per-sample ``DataLoader``.
LOADERS = ("tensor", "torchvision")


# -- field checks (each returns the normalised value or raises TypeError/ValueError) ----------

#: The longest file name most file systems take (ext4, xfs, btrfs, tmpfs; ``NAME_MAX``).
#: :func:`hw2.results.check_output_folder` checks the real limit of the folder at hand.
NAME_MAX = 255


def _run_name(name, value) -> str:
    expected = "a non-empty name without path separators or control characters"
    check_text(name, value, expected)
    if any(c in value for c in "/\\") or any(ord(c) < 32 or ord(c) == 127 for c in value):
        raise ValueError(f"{name} must be {expected}, got {value!r}")
    return value


def _path(name, value, what: str = "a folder path") -> str:
    check_instance(name, value, (str, os.PathLike), what)
    if not os.fspath(value):
        raise ValueError(f"{name} must be {what}, got {value!r}")
    return str(os.fspath(value))


def _device(name, value) -> Optional[str]:
    dev = check_device(name, value)
    if dev is not None and dev.type not in ("cpu", "cuda"):
        raise ValueError(f"{name} must be 'cpu' or a CUDA device, got {value!r}")
    return None if dev is None else str(dev)


#: The largest seed (``torch.manual_seed`` takes 64-bit seeds; int64 is what every RNG takes).
SEED_MAX = 2 ** 63 - 1
#: The largest layer width (filters per layer, hidden dimensions): 2**20.
SIZE_MAX = 2 ** 20


def _int(minimum: int, optional: bool = False, maximum: Optional[int] = None) -> Callable:
    if not optional:
        return lambda name, v: check_int(name, v, minimum, maximum)
    expected = f"{int_expected(minimum, maximum)} or None"
    return lambda name, v: check_optional(check_int, name, v, minimum, maximum, expected=expected)


def _real(minimum: float, strict: bool) -> Callable:
    return lambda name, v: check_real(name, v, minimum, strict=strict)


def _ints(default: Tuple[int, ...], allow_empty: bool) -> Callable:
    """A tuple of positive ints up to :data:`SIZE_MAX`; None means ``default``."""
    return lambda name, v: tuple(default if v is None else
                                 check_int_list(name, v, allow_empty=allow_empty,
                                                maximum=SIZE_MAX))


def _choice(choices: Sequence[str], optional: bool = False, lower: bool = False) -> Callable:
    normalise = str.lower if lower else str
    return lambda name, v: None if v is None and optional else check_choice(name, v, choices,
                                                                              normalise)


def _flag(optional: bool) -> Callable:
    expected = "True, False or None (automatic)" if optional else "True or False"
    return lambda name, v: check_optional(check_bool, name, v, expected) if optional \
        else check_bool(name, v, expected)


def _model_kw(name, value) -> Dict[str, Any]:
    value = check_kwargs(name, value)
    for key in value:
        if not isinstance(key, str) or not key.isidentifier():
            raise ValueError(f"{name} keys must be argument names, got {key!r}")
        if key in _FIELD_NAMES:
            raise ValueError(f"{name}: {key!r} is an experiment setting, not a model argument; "
                             f"set it as {key}=... (--{key.replace('_', '-')})")
    return value


# -- the fields ------------------------------------------------------------------------------------

@dataclasses.dataclass(frozen=True)
class Option:
    """How a field is checked and how it appears on the command line.

    flags: its flags, long first (``--bs-train``); ``printed`` is the one :meth:`to_argv` uses.
    check: ``check(name, value) -> normalised value``; raises ``TypeError``/``ValueError``.
    help: what it means; the default is appended (``default_text`` overrides how).
    group: the ``run-exp --help`` section.
    parse: argparse ``type``; ``nargs``/``metavar``/``choices`` as in argparse.
    kind: ``value``, ``list``, ``flag`` (``--x/--no-x``) or ``model_kw`` (repeatable pairs).
    none_text: how None is written on the command line (None: it is left out).
    grid: offered as a grid override (``grid-run``, ``grid-submit``, ``grid-show``).
    identity: it identifies the run (a checkpoint of a run that differs here is another run's).
    """

    flags: Tuple[str, ...]
    check: Callable[[str, Any], Any]
    help: str
    group: str = "run"
    parse: Optional[Callable[[str], Any]] = None
    nargs: Optional[str] = None
    metavar: Optional[str] = None
    choices: Optional[Sequence[str]] = None
    kind: str = "value"
    default_text: Optional[str] = None
    none_text: Optional[str] = None
    printed: Optional[str] = None
    grid: bool = True
    identity: bool = True
    required: bool = False

    def __repr__(self) -> str:
        return f"Option({'/'.join(self.flags)}, group={self.group!r})"


def _field(default, *flags: str, check, help: str, factory=None, **option):
    metadata = {"option": Option(flags, check, help, **option)}
    if factory is not None:
        return dataclasses.field(default_factory=factory, metadata=metadata)
    if default is dataclasses.MISSING:
        return dataclasses.field(metadata=metadata)
    return dataclasses.field(default=default, metadata=metadata)


_TRAIN, _MODEL, _DATA = "training", "model", "data and speed"
_AUTO_CUDA = "default: on with CUDA, never on CPU"


@dataclasses.dataclass(frozen=True)
class ExperimentConfig:
    """Every setting of one :func:`hw2.experiments.cnn_experiment` run, checked.

    Lists are stored as tuples (the config is immutable); :meth:`to_dict` gives lists back.
    ``None`` means "automatic" where the help says so: :meth:`resolved` fills in the seed,
    ``bs_test`` and the data set as a run uses them.
    """

    run_name: str = _field(dataclasses.MISSING, "--run-name", "-n", check=_run_name,
                           help="name of the run and its result file", printed="-n",
                           required=True, grid=False, identity=False)
    dataset: Optional[str] = _field(None, "--dataset", check=_choice(DATASET_NAMES, True, True),
                                    help="data set", group=_DATA, choices=DATASET_NAMES,
                                    default_text="default: $HW2_DATASET, else cifar10")
    filters_per_layer: Tuple[int, ...] = _field(
        (64,), "--filters-per-layer", "-K", check=_ints((64,), allow_empty=False),
        help="filters of each block of conv layers", group=_MODEL, parse=int, nargs="+",
        metavar="K", kind="list", printed="-K", grid=False)
    layers_per_block: int = _field(2, "--layers-per-block", "-L", check=_int(1),
                                   help="conv layers per block", group=_MODEL, parse=int,
                                   metavar="L", printed="-L", grid=False)
    pool_every: int = _field(2, "--pool-every", "-P", check=_int(1),
                             help="pool after this many conv layers", group=_MODEL, parse=int,
                             metavar="P", printed="-P", grid=False)
    hidden_dims: Tuple[int, ...] = _field(
        (1024,), "--hidden-dims", "-H", check=_ints((1024,), allow_empty=True),
        help="hidden fully-connected widths (none given: no hidden layer)", group=_MODEL,
        parse=int, nargs="*", metavar="H", kind="list", printed="-H", grid=False)
    model_type: str = _field("cnn", "--model-type", "-M", check=_choice(MODEL_TYPE_NAMES),
                             help="cnn, resnet or ycn (YourCNN)", group=_MODEL,
                             choices=MODEL_TYPE_NAMES, printed="-M", grid=False)
    out_dir: str = _field("./results", "--out-dir", "-o", check=_path, help="result folder",
                          printed="-o", grid=False, identity=False)
    seed: Optional[int] = _field(None, "--seed", "-s", check=_int(0, True, SEED_MAX),
                                 help="random seed", parse=int,
                                 default_text="default: random, recorded")
    device: Optional[str] = _field(None, "--device", "-d", check=_device,
                                   help="cpu, cuda, cuda:1 ...",
                                   default_text="default: cuda if available", identity=False)
    bs_train: int = _field(128, "--bs-train", check=_int(1), help="train batch size",
                           group=_TRAIN, parse=int, metavar="BATCH_SIZE")
    bs_test: Optional[int] = _field(None, "--bs-test", check=_int(1, optional=True),
                                    help="test batch size", group=_TRAIN, parse=int,
                                    metavar="BATCH_SIZE", default_text="default: bs_train // 4")
    batches: Optional[int] = _field(100, "--batches", check=_int(1, optional=True),
                                    help="batches per epoch, 0 or 'all' for whole epochs",
                                    group=_TRAIN, parse=parse_batches, none_text="all")
    epochs: int = _field(100, "--epochs", check=_int(1), help="maximal number of epochs",
                         group=_TRAIN, parse=int, identity=False)  # a run may be extended
    early_stopping: Optional[int] = _field(
        3, "--early-stopping", check=_int(1, optional=True), group=_TRAIN,
        help="stop after this many epochs without test-loss improvement; 0: never",
        parse=parse_patience, none_text="0")
    checkpoints: Optional[str] = _field(
        None, "--checkpoints", group=_TRAIN, metavar="NAME",
        check=lambda n, v: check_optional(_path, n, v, "a file name (without .pt) or None"),
        help="checkpoint files: NAME.last.pt after every epoch (exact resume), NAME.pt when "
             "test accuracy improves; an interrupted run with the same NAME resumes from them",
        grid=False, identity=False)
    lr: float = _field(1e-3, "--lr", check=_real(0.0, strict=True), help="Adam learning rate",
                       group=_TRAIN, parse=float)
    reg: float = _field(1e-3, "--reg", check=_real(0.0, strict=False),
                        help="L2 regularisation / weight decay", group=_TRAIN, parse=float)
    loader: str = _field("tensor", "--loader", check=_choice(LOADERS), group=_DATA,
                         help="tensor: whole data set on the device; torchvision: DataLoader",
                         choices=LOADERS, identity=False)
    augment: bool = _field(False, "--augment", check=_flag(False), group=_DATA, kind="flag",
                           help="random crop + flip (tensor loader)")
    amp: Optional[bool] = _field(None, "--amp", check=_flag(True), group=_DATA, kind="flag",
                                 help="bf16 autocast", default_text=_AUTO_CUDA)
    channels_last: Optional[bool] = _field(None, "--channels-last", check=_flag(True),
                                           group=_DATA, kind="flag",
                                           help="channels_last memory format",
                                           default_text=_AUTO_CUDA, identity=False)
    cudnn_benchmark: Optional[bool] = _field(None, "--cudnn-benchmark", check=_flag(True),
                                             group=_DATA, kind="flag", help="cudnn.benchmark",
                                             default_text=_AUTO_CUDA, identity=False)
    non_blocking: Optional[bool] = _field(
        None, "--non-blocking", check=_flag(True), group=_DATA, kind="flag",
        help="pinned memory + async copies (torchvision loader)", default_text=_AUTO_CUDA,
        identity=False)
    compile_model: bool = _field(False, "--compile", check=_flag(False), group=_DATA,
                                 kind="flag", help="torch.compile the model", identity=False)
    kw: Dict[str, Any] = _field(None, "--model-kw", check=_model_kw, factory=dict, group=_MODEL,
                                parse=parse_model_kw, metavar="KEY=VALUE", kind="model_kw",
                                help="extra model argument, e.g. batchnorm=False, "
                                     "activation_type=lrelu, conv_params='{\"padding\": 1}'; "
                                     "VALUE: True/False/None, a number, a JSON list/object/"
                                     "string or a plain word; repeatable")

    def __post_init__(self):
        for f in dataclasses.fields(self):
            try:
                value = _option(f).check(f.name, getattr(self, f.name))
            except (TypeError, ValueError) as err:
                raise config_error(err) from None
            object.__setattr__(self, f.name, value)
        # The longest file of a run is its "last" checkpoint, {stem}.last.pt, plus its temp name.
        longest = len(self.filename) - len(".json") + len(".last.pt") + TEMP_NAME_EXTRA
        if longest > NAME_MAX:
            raise ExperimentConfigError(
                f"run_name is too long: the result file name {self.filename[:40]!r}... has "
                f"{len(self.filename)} characters, and its checkpoint's temporary name must fit "
                f"in {NAME_MAX} (at most {len(self.run_name) - longest + NAME_MAX} characters "
                f"of run_name for K={list(self.filters_per_layer)}, L={self.layers_per_block})")
        if self.augment and self.loader != "tensor":
            raise ExperimentConfigError("augment=True needs loader='tensor' (the torchvision "
                                        "path here does no augmentation)")

    # -- derived values ----------------------------------------------------------------------

    @property
    def channels(self) -> List[int]:
        """The channel list: every ``K[i]`` repeated ``L`` times (:func:`expand_channels`)."""
        return expand_channels(self.filters_per_layer, self.layers_per_block)

    @property
    def filename(self) -> str:
        """The result file's name, ``{run_name}_L{L}_K{K-K-K}.json``."""
        return result_filename(self.run_name, self.filters_per_layer, self.layers_per_block)

    @property
    def stem(self) -> str:
        """The result file's name without ``.json`` (also the grids' checkpoint name)."""
        return self.filename[:-len(".json")]

    @property
    def result_path(self) -> str:
        """Where the result file goes: ``{out_dir}/{filename}``."""
        return os.path.join(self.out_dir, self.filename)

    def replace(self, **changes) -> "ExperimentConfig":
        """A copy with some fields changed (checked again).

        :raises ExperimentConfigTypeError: A name that is not a field (model arguments go in
            ``kw``).
        """
        unknown = sorted(set(changes) - set(_FIELD_NAMES))
        if unknown:
            raise ExperimentConfigTypeError(
                f"unknown setting(s) {', '.join(unknown)}: the settings are "
                f"{', '.join(_FIELD_NAMES)} (model arguments go in kw)")
        return dataclasses.replace(self, **changes)

    def resolved(self) -> "ExperimentConfig":
        """The configuration as a run uses it: a drawn seed, ``bs_test`` and the data set.

        The values it fills in are valid by construction, so nothing is checked again.

        :raises ExperimentConfigError: If ``$HW2_DATASET`` names no data set.
        """
        try:
            dataset = self.dataset or default_dataset_name()
        except ValueError as err:
            raise ExperimentConfigError(f"dataset: {err}") from None
        filled = dict(
            seed=self.seed if self.seed is not None else random.SystemRandom().randrange(2 ** 31),
            bs_test=self.bs_test if self.bs_test is not None else max(1, self.bs_train // 4),
            dataset=dataset)
        copied = copy.copy(self)
        for name, value in filled.items():
            object.__setattr__(copied, name, value)
        return copied

    # -- conversions -------------------------------------------------------------------------

    def to_dict(self) -> Dict[str, Any]:
        """Every field as plain JSON values (tuples become lists), in field order."""
        return {f.name: _plain(getattr(self, f.name)) for f in dataclasses.fields(self)}

    def identity(self) -> Dict[str, Any]:
        """The fields that identify the run (what a checkpoint must agree with)."""
        return {k: v for k, v in self.to_dict().items() if _OPTIONS[k].identity}

    def experiment_kwargs(self) -> Dict[str, Any]:
        """Keyword arguments of :func:`hw2.experiments.cnn_experiment` that repeat this run."""
        kwargs = {k: v for k, v in self.to_dict().items() if k != "kw"}
        kwargs.update(self.kw)
        return kwargs

    @classmethod
    def from_kwargs(cls, settings: Dict[str, Any]) -> "ExperimentConfig":
        """Split keyword arguments into fields and model arguments (``kw``) and check them."""
        fields = {k: v for k, v in settings.items() if k in _FIELD_NAMES and k != "kw"}
        model_kw = dict(settings.get("kw") or {})
        model_kw.update({k: v for k, v in settings.items() if k not in _FIELD_NAMES})
        return cls(**fields, kw=model_kw)

    @classmethod
    def from_args(cls, args: argparse.Namespace, base: Optional[Dict[str, Any]] = None
                  ) -> "ExperimentConfig":
        """The configuration of parsed arguments (fields absent from ``args`` keep ``base``'s
        value or the default)."""
        values = dict(base or {})
        for name in _FIELD_NAMES:
            if hasattr(args, name):
                value = getattr(args, name)
                values[name] = dict(value) if name == "kw" else value
        return cls(**values)

    def to_argv(self) -> List[str]:
        """The ``run-exp`` arguments of this configuration: every field that has a value
        (None is left out unless it has a spelling, e.g. ``--batches all``)."""
        argv: List[str] = []
        for f in dataclasses.fields(self):
            argv += _format(_option(f), getattr(self, f.name))
        return argv


def _option(f: dataclasses.Field) -> Option:
    return f.metadata["option"]


_FIELDS = dataclasses.fields(ExperimentConfig)
_FIELD_NAMES = tuple(f.name for f in _FIELDS)
_OPTIONS = {f.name: _option(f) for f in _FIELDS}

#: The parameters of :func:`hw2.experiments.cnn_experiment` that a result file's config stores
#: and that :func:`hw2.experiments.rerun_config` passes back (model arguments are under ``kw``).
EXPERIMENT_PARAMS = tuple(name for name in _FIELD_NAMES if name != "kw")
#: The fields a grid command may override (the others are the grid's own).
GRID_OVERRIDES = tuple(name for name in _FIELD_NAMES if _OPTIONS[name].grid)


def _plain(value):
    if isinstance(value, tuple):
        return [_plain(v) for v in value]
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    return value


def _format(option: Option, value) -> List[str]:
    """One field's part of :meth:`ExperimentConfig.to_argv`."""
    flag = option.printed or option.flags[0]
    if option.kind == "flag":
        if value is None:
            return []
        return [flag if value else "--no-" + flag[2:]]
    if option.kind == "model_kw":
        return [t for k, v in value.items() for t in (flag, f"{k}={json.dumps(v)}")]
    if option.kind == "list":
        return [flag, *map(str, value)]
    if value is None:
        return [] if option.none_text is None else [flag, option.none_text]
    return [flag, str(value)]


def expand_channels(filters_per_layer: Sequence[int], layers_per_block: int) -> List[int]:
    """The channel list of a K x L configuration: every ``K[i]`` repeated ``L`` times.

    :param filters_per_layer: ``K``, e.g. ``[32, 64]``.
    :param layers_per_block: ``L``, e.g. ``2``.
    :return: E.g. ``[32, 32, 64, 64]``.
    """
    return [int(k) for k in filters_per_layer for _ in range(int(layers_per_block))]


# -- argparse ------------------------------------------------------------------------------------

def _default_text(f: dataclasses.Field, option: Option) -> str:
    if option.default_text is not None:
        return option.default_text
    if option.required:
        return "required"
    default = f.default if f.default is not dataclasses.MISSING else None
    if default is None or option.kind == "model_kw":
        return "default: none"
    if isinstance(default, tuple):
        return " ".join(map(str, default))
    if option.kind == "flag":
        return "on" if default else "off"
    return str(default)


def add_arguments(parser, names: Sequence[str] = _FIELD_NAMES, overrides: bool = False) -> None:
    """Add the flags of the fields ``names`` to an argparse parser, grouped by section.

    :param names: Which fields (default: all of them, as ``run-exp`` has).
    :param overrides: Grid overrides: nothing is required, and a flag not given leaves no
        attribute (``argparse.SUPPRESS``), so "not given" differs from every value.
    """
    groups: Dict[str, Any] = {}
    for f in _FIELDS:
        if f.name not in names:
            continue
        option = _OPTIONS[f.name]
        if option.group == "run":
            target = parser
        else:
            title = ("overriding the grid's " if overrides else "") + option.group
            target = groups.setdefault(option.group, parser.add_argument_group(title))
        kwargs: Dict[str, Any] = dict(dest=f.name)
        if overrides:
            kwargs.update(default=argparse.SUPPRESS, help=f"{option.help} (default: the grid's)")
        else:
            default = f.default_factory() if f.default_factory is not dataclasses.MISSING \
                else (None if f.default is dataclasses.MISSING else f.default)
            kwargs.update(default=list(default) if isinstance(default, tuple) else default,
                          help=f"{option.help} ({_default_text(f, option)})",
                          required=option.required)
        if option.kind == "flag":
            kwargs["action"] = argparse.BooleanOptionalAction
        elif option.kind == "model_kw":
            kwargs.update(action="append", type=option.parse, metavar=option.metavar)
            if not overrides:
                kwargs["default"] = []
        else:
            kwargs.update({k: v for k, v in (("type", option.parse), ("nargs", option.nargs),
                                             ("metavar", option.metavar),
                                             ("choices", option.choices)) if v is not None})
        target.add_argument(*option.flags, **kwargs)
