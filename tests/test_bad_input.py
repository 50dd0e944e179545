"""The bad-input catalogue: common mistakes and the exact complaint each one gets.

Every row of :data:`CASES` is one distinct mistake a user can make with the public API: the
call, the documented exception type, and a regular expression that the *message* must match.
The patterns name the argument, what was expected and what was received, so a test fails when
a message loses any of the three. Each error must also be raised by the package's own
validation code (``hw2/`` or ``cs236781/``), never from deep inside torch or numpy.

:data:`CLI_CASES` does the same for ``python -m hw2.experiments``: exit status 2, the message
on stderr, no traceback and no result file.
"""
import json
import os
import re
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest
import torch
import torch.nn as nn

from helpers import assert_clear_error, child_env
from cs236781.drawing_pad import pad_for, preprocess
from cs236781.model_summary import summarize as summarize_model
from hw2 import cnn, layers, optimizers
from hw2.classifier import ArgMaxClassifier, BinaryClassifier, plot_decision_boundary_2d, \
    select_roc_thresh
from hw2.datasets import dataset_info, load_dataset
from hw2.cli import USAGE_ERROR
from hw2.validation import ModelArgumentError, parse_model_kw
from hw2.summaries import summarize
from hw2.validation import UsageError
from hw2.experiments import cnn_experiment
from hw2.results import load_experiment
from hw2.validation import ExperimentConfigError
from hw2.grad_compare import compare_layer_to_torch
from hw2.mlp import MLP
from hw2.tensor_data import TensorLoader
from hw2.training import ClassifierTrainer, LayerTrainer, TrainingDiverged

NAN, INF = float("nan"), float("inf")


# ----------------------------------------------------------------------------------------------
# Small builders used by the cases
# ----------------------------------------------------------------------------------------------

def _backward_with(layer, x, dout, **kw):
    """Run ``layer`` forward on ``x`` then backward with a (wrong) ``dout``."""
    layer(x, **kw)
    return layer.backward(dout)


def _image_batch(n=4, c=1, h=4, w=4):
    return torch.zeros(n, c, h, w), torch.zeros(n, dtype=torch.long)


def _layer_trainer(model=None):
    model = model or layers.Linear(4, 2)
    return LayerTrainer(model, layers.CrossEntropyLoss(), optimizers.VanillaSGD(model.params()))


def _nan_linear():
    fc = layers.Linear(4, 2)
    fc.w.fill_(NAN)
    return fc


def _tiny_cnn(**kw):
    return cnn.CNN(in_size=(3, 8, 8), out_classes=10, channels=[4], pool_every=1,
                   hidden_dims=[8], **kw)


def _flat_batches(n=2):
    return [(torch.randn(3, 4), torch.tensor([0, 1, 0]))] * n


def _param():
    return torch.zeros(3, requires_grad=True)


_GOOD_RESULTS = {"num_epochs": 1, "train_loss": [2.3], "train_acc": [11.0], "test_loss": [2.2],
                 "test_acc": [12.0]}


def _load_result_text(text: str):
    """Write ``text`` to a scratch ``bad.json`` and read it with ``load_experiment``."""
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "bad.json"
        path.write_text(text)
        return load_experiment(str(path))


def _load_result_bytes(data: bytes):
    """Write ``data`` to a scratch ``bad.json`` and read it with ``load_experiment``."""
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "bad.json"
        path.write_bytes(data)
        return load_experiment(str(path))


def _summarize_a_file(plots: bool):
    """summarize() given a file as the results folder, or (plots) as the PNG folder."""
    with tempfile.TemporaryDirectory() as folder:
        a_file = Path(folder) / "results.txt"
        a_file.write_text("not a folder")
        if plots:
            return summarize(folder, plots_dir=a_file, file=open(os.devnull, "w"))
        return summarize(a_file)


def _experiment(run_name="bad", **override):
    """A tiny cnn_experiment call with one mistake; validation fails before any data loads."""
    kw = dict(dataset="digits", epochs=1, batches=1, filters_per_layer=[4], layers_per_block=1,
              pool_every=1, hidden_dims=[8], verbose=False)
    with tempfile.TemporaryDirectory() as folder:
        return cnn_experiment(run_name, out_dir=folder, **{**kw, **override})


# ----------------------------------------------------------------------------------------------
# The catalogue: (id, callable, exception type, message pattern)
# ----------------------------------------------------------------------------------------------

CASES = [
    # --- from-scratch layers: shapes, dtypes, sizes ------------------------------------------
    ("linear-wrong-feature-count", lambda: layers.Linear(4, 3)(torch.randn(2, 5)),
     ValueError, r"Linear\(4, 3\): expected input of shape \(N, 4\), got \(2, 5\)"),
    ("linear-wrong-float-dtype", lambda: layers.Linear(4, 3)(torch.randn(2, 4, dtype=torch.float64)),
     TypeError, r"expected input of dtype torch\.float32, got torch\.float64"),
    ("linear-integer-input", lambda: layers.Linear(4, 3)(torch.ones(2, 4, dtype=torch.long)),
     TypeError, r"x must be a floating-point tensor, got dtype torch\.int64"),
    ("linear-zero-in-features", lambda: layers.Linear(0, 3),
     ValueError, r"in_features must be an integer >= 1, got 0"),
    ("linear-negative-out-features", lambda: layers.Linear(3, -2),
     ValueError, r"out_features must be an integer >= 1, got -2"),
    ("linear-nan-wstd", lambda: layers.Linear(3, 2, wstd=NAN),
     ValueError, r"wstd must be a finite number >= 0\.0, got nan"),
    ("linear-integer-param-dtype", lambda: layers.Linear(3, 2, dtype=torch.int32),
     ValueError, r"^dtype must be one of torch\.float16, torch\.bfloat16, torch\.float32, "
                 r"torch\.float64, got torch\.int32$"),
    ("linear-dout-wrong-shape",
     lambda: _backward_with(layers.Linear(3, 2), torch.randn(5, 3), torch.ones(5, 3)),
     ValueError, r"Linear\(3, 2\)\.backward: expected dout of shape \(5, 2\).*got \(5, 3\)"),
    ("linear-backward-before-forward", lambda: layers.Linear(3, 2).backward(torch.ones(1, 2)),
     RuntimeError, r"Linear\(3, 2\): backward\(\) called before forward\(\)"),
    ("leaky-relu-alpha-out-of-range", lambda: layers.LeakyReLU(alpha=1.5),
     ValueError, r"alpha must be a number in \[0, 1\), got 1\.5"),
    ("relu-given-a-list", lambda: layers.ReLU()([1.0, -1.0]),
     TypeError, r"x must be a torch\.Tensor, got list"),
    ("sigmoid-dout-transposed",
     lambda: _backward_with(layers.Sigmoid(), torch.randn(2, 3), torch.ones(3, 2)),
     ValueError, r"Sigmoid\.backward: expected dout of shape \(2, 3\).*got \(3, 2\)"),
    ("tanh-boolean-input", lambda: layers.TanH()(torch.tensor([True, False])),
     TypeError, r"x must be a floating-point tensor, got dtype torch\.bool"),
    ("dropout-p-one", lambda: layers.Dropout(p=1.0),
     ValueError, r"p must be a number in \[0, 1\), got 1\.0"),
    ("sequential-given-a-torch-module", lambda: layers.Sequential(layers.ReLU(), nn.ReLU()),
     TypeError, r"Sequential: argument 1 must be a Layer, got ReLU"),
    ("layer-mlp-unknown-activation", lambda: layers.MLP(4, 3, [5], activation="tanh"),
     ValueError, r"activation must be one of relu, sigmoid, got 'tanh'"),
    ("layer-mlp-hidden-features-not-a-sequence", lambda: layers.MLP(4, 3, 5),
     TypeError, r"hidden_features must be a list of positive integers, got 5"),
    ("layer-mlp-zero-width-hidden-layer", lambda: layers.MLP(4, 3, [8, 0]),
     ValueError, r"hidden_features\[1\] must be an integer >= 1, got 0"),
    ("compare-layer-given-a-torch-module",
     lambda: compare_layer_to_torch(nn.ReLU(), torch.randn(2, 3)),
     TypeError, r"layer must be a hw2\.layers\.Layer, got ReLU"),

    # --- losses: labels, empty batches, non-finite targets -----------------------------------
    ("cross-entropy-label-too-large",
     lambda: layers.CrossEntropyLoss()(torch.randn(4, 3), torch.tensor([0, 1, 3, 2])),
     ValueError, r"expected labels in \[0, 2\], got values in \[0, 3\]"),
    ("cross-entropy-negative-label",
     lambda: layers.CrossEntropyLoss()(torch.randn(4, 3), torch.tensor([0, -1, 2, 2])),
     ValueError, r"expected labels in \[0, 2\], got values in \[-1, 2\]"),
    ("cross-entropy-label-count",
     lambda: layers.CrossEntropyLoss()(torch.randn(4, 3), torch.tensor([0, 1, 2])),
     ValueError, r"expected labels y of shape \(4,\), got \(3,\)"),
    ("cross-entropy-float-labels",
     lambda: layers.CrossEntropyLoss()(torch.randn(2, 3), torch.tensor([0.0, 1.0])),
     ValueError, r"expected integer labels y .*got dtype torch\.float32"),
    ("cross-entropy-1d-scores",
     lambda: layers.CrossEntropyLoss()(torch.randn(4), torch.tensor([0, 1, 2, 1])),
     ValueError, r"expected scores x of shape \(N, C\), got \(4,\)"),
    ("cross-entropy-empty-batch",
     lambda: layers.CrossEntropyLoss()(torch.randn(0, 3), torch.zeros(0, dtype=torch.long)),
     ValueError, r"expected a non-empty batch of scores \(N >= 1, C >= 1\), got shape \(0, 3\)"),
    ("cross-entropy-backward-non-scalar-dout",
     lambda: _backward_with(layers.CrossEntropyLoss(), torch.randn(2, 3), torch.ones(2),
                            y=torch.tensor([0, 1])),
     ValueError, r"backward expects a scalar dout, got a tensor of shape \(2,\)"),
    ("loss-backward-dout-as-text",
     lambda: _backward_with(layers.CrossEntropyLoss(), torch.randn(2, 3), "1",
                            y=torch.tensor([0, 1])),
     TypeError, r"^dout must be a finite number or a scalar tensor, got '1'$"),
    ("bce-logits-two-columns",
     lambda: layers.BCEWithLogitsLoss()(torch.randn(4, 2), torch.ones(4)),
     ValueError, r"expected N >= 1 logits x and N targets y, each \(N,\) or \(N, 1\), got shapes "
                 r"\(4, 2\) and \(4,\)"),
    ("bce-target-out-of-range",
     lambda: layers.BCEWithLogitsLoss()(torch.randn(3), torch.tensor([0.0, 1.0, 2.0])),
     ValueError, r"expected targets y in \[0, 1\], got values in \[0\.0, 2\.0\]"),
    ("bce-nan-target",
     lambda: layers.BCEWithLogitsLoss()(torch.randn(2), torch.tensor([NAN, 1.0])),
     ValueError, r"expected targets y in \[0, 1\], got values in \[nan, nan\]"),
    ("bce-empty-batch",
     lambda: layers.BCEWithLogitsLoss()(torch.randn(0), torch.ones(0)),
     ValueError, r"expected N >= 1 logits x .*got shapes \(0,\) and \(0,\)"),

    # --- optimizers: hyperparameters and parameter lists -------------------------------------
    ("sgd-negative-learn-rate", lambda: optimizers.VanillaSGD([_param()], learn_rate=-0.1),
     ValueError, r"learn_rate must be a finite number >= 0, got -0\.1"),
    ("sgd-infinite-learn-rate", lambda: optimizers.VanillaSGD([_param()], learn_rate=INF),
     ValueError, r"learn_rate must be a finite number >= 0, got inf"),
    ("sgd-nan-reg", lambda: optimizers.VanillaSGD([_param()], reg=NAN),
     ValueError, r"reg must be a finite number >= 0, got nan"),
    ("sgd-learn-rate-as-string", lambda: optimizers.VanillaSGD([_param()], learn_rate="0.1"),
     TypeError, r"learn_rate must be a finite number >= 0, got '0\.1'"),
    ("optimizer-empty-params", lambda: optimizers.Adam([]),
     ValueError, r"params must contain at least one parameter, got an empty sequence"),
    ("optimizer-single-tensor", lambda: optimizers.Adam(_param()),
     TypeError, r"params must be a sequence .*got a single Tensor"),
    ("optimizer-pair-shapes-differ",
     lambda: optimizers.VanillaSGD([(torch.zeros(2), torch.zeros(3))]),
     ValueError, r"params\[0\]: grad shape must match the param's shape \(2,\), got \(3,\)"),
    ("optimizer-integer-param", lambda: optimizers.Adam([torch.zeros(2, dtype=torch.long)]),
     TypeError, r"params\[0\] must be a floating-point tensor, got dtype torch\.int64"),
    ("momentum-of-one", lambda: optimizers.MomentumSGD([_param()], momentum=1.0),
     ValueError, r"momentum must be a number in \[0, 1\), got 1\.0"),
    ("nesterov-not-a-bool", lambda: optimizers.MomentumSGD([_param()], nesterov="yes"),
     TypeError, r"nesterov must be True or False, got 'yes'"),
    ("rmsprop-zero-decay", lambda: optimizers.RMSProp([_param()], decay=0),
     ValueError, r"decay must be a number in \(0, 1\), got 0"),
    ("rmsprop-zero-eps", lambda: optimizers.RMSProp([_param()], eps=0),
     ValueError, r"eps must be a finite number > 0, got 0"),
    ("adam-beta1-of-one", lambda: optimizers.Adam([_param()], beta1=1.0),
     ValueError, r"beta1 must be a number in \[0, 1\), got 1\.0"),
    ("adam-negative-beta2", lambda: optimizers.Adam([_param()], beta2=-0.1),
     ValueError, r"beta2 must be a number in \[0, 1\), got -0\.1"),
    ("optimizer-state-of-another-shape",
     lambda: optimizers.Adam([torch.zeros(2)]).load_state_dict(
         {"state": {0: {"exp_avg": torch.zeros(3)}}}),
     ValueError, r"state 'exp_avg' of params\[0\] has shape \(3,\), the param has \(2,\)"),

    # --- torch MLP, CNNs, classifiers ----------------------------------------------------------
    ("mlp-unknown-nonlinearity", lambda: MLP(4, [3], ["gelu"]),
     ValueError, r"nonlins\[0\] must be one of relu, .*, got 'gelu'"),
    ("mlp-dims-and-nonlins-differ", lambda: MLP(4, [3, 2], ["relu"]),
     ValueError, r"dims and nonlins must have the same length, got 2 dims \[3, 2\] and 1 nonlins"),
    ("mlp-zero-width", lambda: MLP(4, [0], ["relu"]),
     ValueError, r"dims\[0\] must be an integer >= 1, got 0"),
    ("mlp-dims-not-a-sequence", lambda: MLP(4, 3, ["relu"]),
     TypeError, r"dims must be a list of positive integers \(at least one\), got 3"),
    ("cnn-pool-every-zero", lambda: cnn.CNN((3, 8, 8), 10, [4], pool_every=0, hidden_dims=[8]),
     ValueError, r"^pool_every must be an integer >= 1, got 0$"),
    ("cnn-unknown-activation", lambda: _tiny_cnn(activation_type="gelu"),
     ValueError, r"activation_type must be one of relu, lrelu, tanh, got 'gelu'"),
    ("cnn-unknown-pooling", lambda: _tiny_cnn(pooling_type="min"),
     ValueError, r"pooling_type must be one of max, avg, got 'min'"),
    ("cnn-feature-maps-shrink-to-nothing",
     lambda: cnn.CNN((3, 8, 8), 10, [4] * 5, pool_every=1, hidden_dims=[8]),
     ValueError, r"CNN with in_size=\(3, 8, 8\) \(channels=\[4, 4, 4, 4, 4\], pool_every=1, .*\) "
                 r"shrinks the feature maps to nothing; use fewer pooling layers"),
    ("cnn-in-size-without-channels", lambda: cnn.CNN((8, 8), 10, [4], pool_every=1, hidden_dims=[8]),
     ValueError, r"in_size must be \(channels, height, width\), got \(8, 8\)"),
    ("cnn-negative-channel-count",
     lambda: cnn.CNN((3, 8, 8), 10, [4, -1], pool_every=1, hidden_dims=[8]),
     ValueError, r"channels\[1\] must be an integer >= 1, got -1"),
    ("cnn-input-wrong-channels", lambda: _tiny_cnn()(torch.randn(2, 1, 8, 8)),
     ValueError, r"CNN expects input of shape \(N, 3, 8, 8\), got \(2, 1, 8, 8\)"),
    ("cnn-conv-params-not-a-dict", lambda: _tiny_cnn(conv_params=[3]),
     TypeError, r"conv_params must be a dict of keyword arguments or None, got \[3\]"),
    ("residual-block-even-kernel", lambda: cnn.ResidualBlock(3, [4], [2]),
     ValueError, r"kernel_sizes\[0\] must be odd .*got 2"),
    ("resnet-impossible-bottleneck",
     lambda: cnn.ResNet((3, 8, 8), 10, [4, 8], pool_every=2, hidden_dims=[8], bottleneck=True),
     ValueError, r"bottleneck=True but no group of pool_every=2 convolutions can be a bottleneck"),
    ("binary-classifier-positive-class-two",
     lambda: BinaryClassifier(nn.Linear(2, 2), positive_class=2),
     ValueError, r"positive_class must be 0 or 1, got 2"),
    ("binary-classifier-nan-threshold",
     lambda: BinaryClassifier(nn.Linear(2, 2), threshold=NAN),
     ValueError, r"^threshold must be a probability in \[0, 1\] .*, got nan$"),
    ("classify-scores-1d", lambda: ArgMaxClassifier(nn.Linear(2, 2)).classify_scores(torch.randn(3)),
     ValueError, r"z must be 2-D scores of shape \(N, C\), got shape \(3,\)"),
    ("roc-threshold-with-one-class",
     lambda: select_roc_thresh(BinaryClassifier(nn.Linear(2, 2)), torch.randn(4, 2),
                               torch.ones(4, dtype=torch.long)),
     ValueError, r"y must contain both binary labels 0 and 1, got labels \[1\]"),
    ("roc-threshold-with-nan-samples",
     lambda: select_roc_thresh(BinaryClassifier(nn.Linear(2, 2)),
                               torch.tensor([[NAN, 1.0], [0.0, 1.0], [1.0, 0.0], [2.0, 2.0]]),
                               torch.tensor([0, 1, 0, 1])),
     ValueError, r"select_roc_thresh: x must hold finite values, got NaN or infinite entries in "
                 r"1 of its 4 samples"),
    ("decision-boundary-zero-step",
     lambda: plot_decision_boundary_2d(ArgMaxClassifier(nn.Linear(2, 2)), torch.randn(4, 2),
                                       torch.tensor([0, 1, 0, 1]), dx=0),
     ValueError, r"dx must be a positive finite number, got 0"),

    # --- trainers ------------------------------------------------------------------------------
    ("fit-negative-epochs", lambda: _layer_trainer().fit([], [], num_epochs=-1),
     ValueError, r"num_epochs must be an integer >= 0, got -1"),
    ("fit-early-stopping-zero",
     lambda: _layer_trainer().fit([], [], num_epochs=1, early_stopping=0),
     ValueError, r"early_stopping must be an integer >= 1, got 0"),
    ("fit-max-batches-zero", lambda: _layer_trainer().fit([], [], num_epochs=1, max_batches=0),
     ValueError, r"max_batches must be an integer >= 1, got 0"),
    ("fit-unknown-keyword", lambda: _layer_trainer().fit([], [], num_epochs=1, batch_limit=3),
     TypeError, r"unexpected keyword argument\(s\) batch_limit; supported: verbose, max_batches"),
    ("fit-empty-loader",
     lambda: _layer_trainer().fit([], [], num_epochs=1, print_every=0),
     ValueError, r"train_batch: the data loader yielded no batches \(expected at least one "
                 r"batch"),
    ("fit-nan-training-loss",
     lambda: _layer_trainer(_nan_linear()).fit(_flat_batches(), _flat_batches(), num_epochs=2,
                                                print_every=0),
     TrainingDiverged, r"training loss is nan at epoch 1, batch 1; training diverged"),
    ("classifier-trainer-given-a-layer",
     lambda: ClassifierTrainer(layers.Linear(4, 2), nn.CrossEntropyLoss(), None),
     TypeError, r"model must be a torch\.nn\.Module, got Linear"),

    # --- the drawing pad (cs236781.drawing_pad, cs236781.pad_image) ----------------------------
    ("pad-fill-above-one", lambda: pad_for(nn.Linear(64, 10), (1, 8, 8), fill=1.5),
     ValueError, r"^fill must be a number in \(0, 1\], got 1\.5$"),
    ("pad-unknown-centring", lambda: pad_for(nn.Linear(64, 10), (1, 8, 8), centring="middle"),
     ValueError, r"^centring must be one of mass, box, got 'middle'$"),
    ("pad-in-size-as-text", lambda: pad_for(nn.Linear(64, 10), "1x8x8"),
     TypeError, r"^in_size must be \(C, H, W\) or \(H, W\) with positive integer entries, got "
                r"'1x8x8'$"),
    ("preprocess-size-with-one-entry",
     lambda: preprocess(torch.ones(5, 5).numpy(), size=(28,)),
     ValueError, r"^size must be a positive integer S or an \(H, W\) pair of positive integers, "
                 r"got \(28,\)$"),

    # --- data ------------------------------------------------------------------------------------
    ("unknown-dataset-name", lambda: load_dataset("imagenet", verbose=False),
     ValueError, r"^dataset name must be one of cifar10, mnist, fashion-mnist, digits, "
                 r"synthetic, got 'imagenet'$"),
    ("dataset-info-unknown-name", lambda: dataset_info("cifar100"),
     ValueError, r"^dataset name must be one of .*, got 'cifar100'$"),
    ("dataset-name-as-a-number", lambda: load_dataset(10, verbose=False),
     TypeError, r"^dataset name must be one of cifar10, .*, got 10$"),
    ("model-summary-input-size-with-a-float", lambda: summarize_model(nn.Linear(3, 2), (3.0,)),
     TypeError, r"^input_size\[0\] must be an integer >= 1, got 3\.0$"),
    ("tensor-loader-zero-batch-size", lambda: TensorLoader(*_image_batch(), 0),
     ValueError, r"batch_size must be a positive integer, got 0"),
    ("tensor-loader-lengths-differ",
     lambda: TensorLoader(torch.zeros(4, 1, 2, 2), torch.zeros(3, dtype=torch.long), 2),
     ValueError, r"expected images \(N, C, H, W\) and targets \(N,\) of equal length, got "
                 r"\(4, 1, 2, 2\) and \(3,\)"),
    ("tensor-loader-fractional-labels",
     lambda: TensorLoader(torch.zeros(2, 1, 2, 2), torch.tensor([0.5, 1.0]), 2),
     ValueError, r"targets must be integer class labels, got non-integer values of dtype "
                 r"torch\.float32"),
    ("tensor-loader-zero-std", lambda: TensorLoader(*_image_batch(), 2, std=[0.0]),
     ValueError, r"std must be positive .*got \[0\.0\]"),
    ("tensor-loader-nan-mean", lambda: TensorLoader(*_image_batch(), 2, mean=[NAN]),
     ValueError, r"mean must be finite, got \[nan\]"),
    ("tensor-loader-negative-crop-padding",
     lambda: TensorLoader(*_image_batch(), 2, augment=True, crop_padding=-1),
     ValueError, r"crop_padding must be a non-negative integer, got -1"),

    # --- experiments: configurations and result files ----------------------------------------
    ("experiment-zero-batch-size", lambda: _experiment(bs_train=0),
     ExperimentConfigError, r"bs_train must be an integer >= 1, got 0"),
    ("experiment-no-filters", lambda: _experiment(filters_per_layer=[]),
     ExperimentConfigError, r"filters_per_layer must be a list of positive integers \(at least "
                            r"one\), got \[\]"),
    ("experiment-infinite-learning-rate", lambda: _experiment(lr=INF),
     ExperimentConfigError, r"lr must be a finite number > 0\.0, got inf"),
    ("experiment-negative-reg", lambda: _experiment(reg=-0.1),
     ExperimentConfigError, r"reg must be a finite number >= 0\.0, got -0\.1"),
    ("experiment-unknown-model-type", lambda: _experiment(model_type="vgg"),
     ExperimentConfigError, r"model_type must be one of cnn, resnet, ycn, got 'vgg'"),
    ("experiment-seed-beyond-64-bits", lambda: _experiment(seed=2 ** 64),
     ExperimentConfigError, r"seed must be an integer >= 0 and <= 9223372036854775807 or None, "
                            r"got 18446744073709551616"),
    ("experiment-hidden-width-2-to-the-40", lambda: _experiment(hidden_dims=[2 ** 40]),
     ExperimentConfigError, r"hidden_dims\[0\] must be an integer >= 1 and <= 1048576, got "
                            r"1099511627776"),
    ("experiment-filters-beyond-the-size-limit", lambda: _experiment(filters_per_layer=[4, 2 ** 21]),
     ExperimentConfigError, r"filters_per_layer\[1\] must be an integer >= 1 and <= 1048576, "
                            r"got 2097152"),
    ("experiment-run-name-with-a-control-character", lambda: _experiment(run_name="a\tb"),
     ExperimentConfigError, r"run_name must be a non-empty name without path separators or "
                            r"control characters, got 'a\\tb'"),
    ("experiment-run-name-too-long-for-the-file-system", lambda: _experiment(run_name="r" * 300),
     ExperimentConfigError, r"run_name is too long: the result file name 'r+'\.\.\. has 311 "
                            r"characters, .* must fit in 255 \(at most 227 characters of run_name"),
    ("model-kw-yes-is-not-a-boolean", lambda: parse_model_kw("batchnorm=yes"),
     ModelArgumentError, r"batchnorm: model argument value must be True/true, False/false, "
                         r"None/null, an integer, .*; got 'yes'"),
    ("model-kw-without-a-value", lambda: parse_model_kw("batchnorm"),
     ModelArgumentError, r"expected KEY=VALUE with KEY an argument name, got 'batchnorm'"),
    ("model-kw-nan", lambda: parse_model_kw("dropout=NaN"),
     ModelArgumentError, r"dropout: model argument value must be .*\(NaN and infinity are "
                         r"refused\); got 'NaN'"),
    ("summarize-a-file-instead-of-a-folder", lambda: _summarize_a_file(plots=False),
     UsageError, r"results folder '.*results\.txt' is not a folder \(it is a file"),
    ("summarize-plots-into-a-file", lambda: _summarize_a_file(plots=True),
     UsageError, r"--plots '.*results\.txt' is not a folder \(it is a file; give a folder for "
                 r"the PNGs"),
    ("result-file-not-utf8", lambda: _load_result_bytes(b'{"config": {"run_name": "\xff"}}'),
     ValueError, r"bad\.json is not a valid experiment result file: it is not UTF-8 text \(byte "
                 r"25: b'\\xff'\)"),
    ("result-file-null-accuracy",
     lambda: _load_result_text(json.dumps(
         {"config": {}, "results": dict(_GOOD_RESULTS, test_acc=[None])})),
     ValueError, r"'results\.test_acc' must be a list of numbers, got|'results\.test_acc' must "
                 r"be a list of numbers$"),
    ("result-file-truncated", lambda: _load_result_text(json.dumps(
        {"config": {}, "results": _GOOD_RESULTS})[:45]),
     ValueError, r"bad\.json is not a valid experiment result file: it is truncated or not JSON"),
    ("result-file-not-json", lambda: _load_result_text("epoch 1: loss 2.3, accuracy 11%"),
     ValueError, r"bad\.json is not a valid experiment result file: it is truncated or not JSON "
                 r"\(Expecting value"),
    ("result-file-json-list", lambda: _load_result_text("[1, 2, 3]"),
     ValueError, r"bad\.json .*expected an object with the keys 'config' and 'results', got list"),
    ("result-file-missing-fields",
     lambda: _load_result_text(json.dumps({"config": {}, "results": {"num_epochs": 1}})),
     ValueError, r"'results' must have exactly the fields \['num_epochs', 'train_loss', "
                 r"'train_acc', 'test_loss', 'test_acc'\], got \['num_epochs'\]"),
    ("result-file-epoch-count-mismatch",
     lambda: _load_result_text(json.dumps(
         {"config": {}, "results": dict(_GOOD_RESULTS, test_acc=[12.0, 13.0])})),
     ValueError, r"'results\.test_acc' has 2 entries for num_epochs=1"),
    ("result-file-nan-accuracy",
     lambda: _load_result_text(json.dumps(
         {"config": {}, "results": dict(_GOOD_RESULTS, test_acc=[float("nan")])})),
     ValueError, r"'results\.test_acc' must hold percentages in \[0, 100\], got nan at index 0"),
    ("result-file-string-epochs",
     lambda: _load_result_text(json.dumps(
         {"config": {}, "results": dict(_GOOD_RESULTS, num_epochs="1")})),
     ValueError, r"'results\.num_epochs' must be a non-negative integer, got '1'"),
]


@pytest.mark.parametrize("call, exc_type, pattern",
                         [pytest.param(c, e, p, id=i) for i, c, e, p in CASES])
def test_mistake_gets_a_clear_message(call, exc_type, pattern):
    assert_clear_error(call, exc_type, pattern)


# ----------------------------------------------------------------------------------------------
# Mistakes left to torch (the validation policy, hw2/validation.py): inside an nn.Module, a batch
# torch cannot process and a keyword a torch layer does not take get torch's own error. Each row
# pairs the mistake with the same mistake made on plain torch.nn layers (the oracle): the user
# gets exactly torch's exception and message, and it comes from torch, not from hw2.
# ----------------------------------------------------------------------------------------------

#: (id, the call through hw2, the same mistake on plain torch.nn, why torch's message is clear)
TORCH_CASES = [
    ("mlp-input-wrong-width", lambda: MLP(4, [3], ["relu"])(torch.randn(2, 5)),
     lambda: nn.Linear(4, 3)(torch.randn(2, 5)),
     "names both shapes, (2x5) and (4x3)"),
    ("mlp-integer-input", lambda: MLP(4, [3], ["relu"])(torch.ones(2, 4, dtype=torch.long)),
     lambda: nn.Linear(4, 3)(torch.ones(2, 4, dtype=torch.long)),
     "names both dtypes, Long and Float"),
    ("cnn-integer-images", lambda: _tiny_cnn()(torch.zeros(2, 3, 8, 8, dtype=torch.uint8)),
     lambda: nn.Conv2d(3, 4, 3, padding=1)(torch.zeros(2, 3, 8, 8, dtype=torch.uint8)),
     "names the input's type (unsigned char) and the layer's (float)"),
    ("residual-block-input-wrong-channels",
     lambda: cnn.ResidualBlock(3, [4], [3])(torch.zeros(2, 4, 8, 8)),
     lambda: nn.Conv2d(3, 4, 3, padding=1)(torch.zeros(2, 4, 8, 8)),
     "names the channels expected (3) and received (4)"),
    ("cnn-activation-params-not-accepted", lambda: _tiny_cnn(activation_params=dict(slope=1)),
     lambda: nn.ReLU(slope=1),
     "names the layer (ReLU) and the keyword (slope)"),
]


@pytest.mark.parametrize("call, plain", [pytest.param(c, t, id=i) for i, c, t, _ in TORCH_CASES])
def test_mistake_inside_a_module_gets_torchs_own_error(call, plain):
    with pytest.raises(Exception) as ours:
        call()
    with pytest.raises(Exception) as theirs:
        plain()
    assert (ours.type, str(ours.value)) == (theirs.type, str(theirs.value))


# ----------------------------------------------------------------------------------------------
# The command line: a handful of mistakes, each in its own process (started all at once)
# ----------------------------------------------------------------------------------------------

#: (id, run-exp arguments after ``-n bad -o OUT``, pattern the stderr message must match)
CLI_CASES = [
    ("cli-K-without-values", ["-K"],
     r"argument --filters-per-layer/-K: expected at least one argument"),
    ("cli-pool-every-zero", ["-K", "8", "-P", "0"],
     r"pool_every must be an integer >= 1, got 0"),
    ("cli-unknown-model-type", ["-M", "vgg"],
     r"argument --model-type/-M: invalid choice: 'vgg' \(choose from .*cnn.*resnet.*ycn"),
    ("cli-nan-learning-rate", ["--lr", "nan"],
     r"lr must be a finite number > 0\.0, got nan"),
    ("cli-model-kw-false-word", ["--model-kw", "batchnorm=off"],
     r"argument --model-kw: batchnorm: model argument value must be True/true, False/false, "
     r"None/null, an integer, a finite number, a JSON list or object of those, a quoted JSON "
     r"string, or a plain word such as lrelu; got 'off'"),
    ("cli-seed-2-to-the-64", ["-s", str(2 ** 64)],
     r"run-exp: error: seed must be an integer >= 0 and <= 9223372036854775807 or None, got "
     r"18446744073709551616"),
    ("cli-hidden-2-to-the-40", ["-H", str(2 ** 40)],
     r"run-exp: error: hidden_dims\[0\] must be an integer >= 1 and <= 1048576, got 1099511627776"),
    ("cli-out-dir-under-a-file", ["-o", "/dev/null/results"],
     r"run-exp: error: out_dir '/dev/null/results' cannot be created: '/dev/null' is a file, "
     r"not a folder"),
    ("cli-checkpoint-folder-is-a-file", ["--checkpoints", "/dev/null/ck"],
     r"run-exp: error: checkpoint folder '/dev/null' is not a folder \(it exists as a file\)"),
    ("cli-run-name-longer-than-the-file-system-takes", ["-n", "n" * 250],
     r"run-exp: error: run_name is too long: the result file name 'n+'\.\.\. has 262 "
     r"characters"),
    ("cli-run-name-with-a-newline", ["-n", "two\nlines"],
     r"run_name must be a non-empty name without path separators or control characters, got "
     r"'two\\nlines'"),
]


@pytest.fixture(scope="module")
def cli_runs(tmp_path_factory):
    """Start every CLI case as ``python -m hw2.experiments run-exp`` concurrently.

    :return: ``{case id: (exit status, stdout, stderr, output folder)}``.
    """
    env = child_env(OMP_NUM_THREADS="1")
    procs = {}
    for case_id, args, _ in CLI_CASES:
        out = tmp_path_factory.mktemp(case_id) / "results"
        argv = [sys.executable, "-m", "hw2.experiments", "run-exp", "-n", "bad", "-o", str(out),
                "--dataset", "synthetic", "--epochs", "1", "--batches", "1", "-q", *args]
        procs[case_id] = (subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                           text=True, env=env), out)
    results = {}
    for case_id, (proc, out) in procs.items():
        stdout, stderr = proc.communicate(timeout=300)
        results[case_id] = (proc.returncode, stdout, stderr, out)
    return results


@pytest.mark.parametrize("case_id, pattern", [pytest.param(i, p, id=i) for i, _, p in CLI_CASES])
def test_cli_mistake_exits_2_with_a_clear_message(cli_runs, case_id, pattern):
    status, stdout, stderr, out = cli_runs[case_id]
    assert status == USAGE_ERROR == 2, stderr
    assert re.search(pattern, stderr), f"stderr was: {stderr}"
    assert "Traceback" not in stdout + stderr
    assert not out.exists() or not any(out.iterdir())  # nothing written


def test_catalogue_has_at_least_40_distinct_mistakes():
    ids = [case[0] for case in CASES + TORCH_CASES] + [case[0] for case in CLI_CASES]
    assert len(ids) == len(set(ids))
    patterns = [case[3] for case in CASES] + [case[2] for case in CLI_CASES]
    assert len(set(patterns)) == len(patterns)  # no two rows expect the same text
    assert len(ids) >= 40
