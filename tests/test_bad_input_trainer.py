"""The bad-input catalogue of the torch trainer path and the model constructors (issue 14).

Each row of :data:`CASES` is one mistake: the call, the documented exception type and a
regular expression its message must match (naming what was expected and what was received).
As in ``test_bad_input.py``, the error must be raised by the package's own code (``hw2/`` or
``cs236781/``), never from deep inside torch.

The trainer checks the first batch of every epoch: an ``(x, y)`` pair of tensors of one
length, ``x`` in the parameters' dtype. A label outside the model's score columns is refused
by torch's own loss, whose message is clear (:data:`TORCH_OWN`).
"""
import tempfile

import pytest
import torch
import torch.nn as nn

from helpers import address_space_cap, assert_clear_error

from hw2 import cnn, layers, optimizers
from hw2.classifier import ArgMaxClassifier, BinaryClassifier, select_roc_thresh
from hw2.experiments import cnn_experiment
from hw2.experiment_trainer import ExperimentTrainer
from hw2.training import ClassifierTrainer, LayerTrainer, TrainingDiverged
from hw2.validation import ExperimentConfigError

NAN, INF = float("nan"), float("inf")


def _trainer(cls=ClassifierTrainer, classes=3):
    torch.manual_seed(0)
    model = nn.Linear(4, classes)
    return cls(model, nn.CrossEntropyLoss(), torch.optim.SGD(model.parameters(), lr=0.1))


def _x(n=4, dtype=torch.float32):
    return torch.randn(n, 4, dtype=dtype)


def _train(batch, cls=ClassifierTrainer):
    """One training epoch of a 4-feature, 3-class model over ``[batch]``."""
    return _trainer(cls).train_epoch([batch], verbose=False)


def _fit(train_batch, test_batch):
    return _trainer().fit([train_batch], [test_batch], num_epochs=2, print_every=0)


def _layer_sgd():
    return optimizers.VanillaSGD(layers.Linear(4, 3).params())


def _tiny_classifier():
    torch.manual_seed(0)
    return BinaryClassifier(nn.Linear(2, 2))


def _huge_model_experiment():
    """A CNN whose second convolution alone needs 40 TB. The address-space cap makes its
    allocation fail on every host, also where the kernel would overcommit it; the output
    folder is a writable one (not /dev, which only root may write), so that the model is the
    first thing refused."""
    with address_space_cap():
        return cnn_experiment("huge", out_dir=f"{tempfile.gettempdir()}/hw2-never-written",
                              dataset="digits", filters_per_layer=[2 ** 20, 2 ** 20],
                              layers_per_block=1, pool_every=1, hidden_dims=[8], epochs=1,
                              verbose=False)


CASES = [
    # -- batches: structure, length, dtype, labels (first batch of each epoch) ---------------
    ("batch-float64-images-float32-model",
     lambda: _train((_x(dtype=torch.float64), torch.tensor([0, 1, 2, 0]))), TypeError,
     r"ClassifierTrainer: the batch 1 has inputs x of dtype torch\.float64, but the model's "
     r"parameters are torch\.float32: convert the data \(e\.g\. x\.to\(torch\.float32\)\) or "
     r"the model"),
    ("batch-uint8-images",
     lambda: _train((torch.zeros(4, 4, dtype=torch.uint8), torch.tensor([0, 1, 2, 0]))),
     TypeError, r"inputs x of dtype torch\.uint8, but the model's parameters are torch\.float32: "
                r"convert the data \(e\.g\. x\.to\(torch\.float32\)\)$"),
    ("experiment-trainer-float64-images",
     lambda: _train((_x(dtype=torch.float64), torch.tensor([0, 1, 2, 0])), ExperimentTrainer),
     TypeError, r"ExperimentTrainer: the batch 1 has inputs x of dtype torch\.float64"),
    ("batch-labels-of-wrong-length", lambda: _train((_x(4), torch.tensor([0, 1, 2]))),
     ValueError, r"the batch 1 has x of shape \(4, 4\) and y of shape \(3,\): expected the "
                 r"same number of samples N in both"),
    ("batch-scalar-labels", lambda: _train((_x(4), torch.tensor(1))), ValueError,
     r"has x of shape \(4, 4\) and y of shape \(\): expected the same number of samples"),
    ("batch-is-one-tensor", lambda: _train(_x()), TypeError,
     r"the batch 1 must be an \(x, y\) pair of tensors, got a Tensor$"),
    ("batch-is-a-triple", lambda: _train((_x(), torch.zeros(4, dtype=torch.long), None)),
     TypeError, r"must be an \(x, y\) pair of tensors, got a tuple of 3 items"),
    ("batch-labels-a-list", lambda: _train((_x(), [0, 1, 2, 0])), TypeError,
     r"must be an \(x, y\) pair of tensors, got \(Tensor, list\)"),
    ("layer-trainer-given-nn-linear",
     lambda: LayerTrainer(nn.Linear(4, 3), layers.CrossEntropyLoss(), _layer_sgd()),
     TypeError,
     r"LayerTrainer: model must be a hw2\.layers\.Layer \(with params\(\) and a manual "
     r"backward\(\)\), got Linear \(a torch\.nn\.Module\); train torch\.nn\.Modules with "
     r"ClassifierTrainer"),
    ("layer-trainer-given-a-string",
     lambda: LayerTrainer("mlp", layers.CrossEntropyLoss(), _layer_sgd()),
     TypeError, r"LayerTrainer: model must be a hw2\.layers\.Layer .*got str \(not a layer\)"),
    # -- ExperimentTrainer options: checked before the model moves ---------------------------
    ("experiment-trainer-autocast-dtype-as-a-string",
     lambda: ExperimentTrainer(nn.Linear(4, 3), nn.CrossEntropyLoss(), None,
                               autocast_dtype="bf16"), TypeError,
     r"^autocast_dtype must be torch\.bfloat16 or torch\.float16 \(or None: no autocast\), got "
     r"'bf16'$"),
    ("experiment-trainer-autocast-float32",
     lambda: ExperimentTrainer(nn.Linear(4, 3), nn.CrossEntropyLoss(), None,
                               autocast_dtype=torch.float32), ValueError,
     r"^autocast_dtype must be torch\.bfloat16 or torch\.float16 \(or None: no autocast\), got "
     r"torch\.float32$"),
    # -- non-finite test loss: reported as a divergence, epoch and batch named ---------------
    ("nan-in-test-data",
     lambda: _fit((_x(), torch.tensor([0, 1, 2, 0])),
                  (torch.full((4, 4), NAN), torch.tensor([0, 1, 2, 0]))), TrainingDiverged,
     r"test_batch: the test loss is nan at epoch 1, batch 1; the model diverged or the test "
     r"data holds NaN or infinite values"),
    ("inf-in-test-data",
     lambda: _trainer().test_epoch([(_x(), torch.tensor([0, 1, 2, 0])),
                                    (torch.full((4, 4), INF), torch.tensor([0, 1, 2, 0]))],
                                   verbose=False), TrainingDiverged,
     r"test_batch: the test loss is nan at batch 2; the model diverged"),
    # -- BinaryClassifier threshold: a probability in [0, 1] ----------------------------------
    ("binary-classifier-threshold-above-one",
     lambda: BinaryClassifier(nn.Linear(2, 2), threshold=1.5), ValueError,
     r"threshold must be a probability in \[0, 1\] \(the positive class wins when its "
     r"probability reaches it\), got 1\.5"),
    ("binary-classifier-threshold-inf",
     lambda: BinaryClassifier(nn.Linear(2, 2), threshold=INF), ValueError,
     r"threshold must be a probability in \[0, 1\] .*got inf"),
    ("binary-classifier-threshold-negative",
     lambda: setattr(_tiny_classifier(), "threshold", -0.1), ValueError,
     r"threshold must be a probability in \[0, 1\] .*got -0\.1"),
    ("binary-classifier-threshold-nan",
     lambda: BinaryClassifier(nn.Linear(2, 2), threshold=NAN), ValueError,
     r"threshold must be a probability in \[0, 1\] .*got nan"),
    # -- boolean options are booleans ('False' is truthy) -------------------------------------
    ("residual-block-batchnorm-string",
     lambda: cnn.ResidualBlock(4, [4, 4], [3, 3], batchnorm="False"), TypeError,
     r"batchnorm must be True or False, got 'False'"),
    ("residual-block-bias-string",
     lambda: cnn.ResidualBlock(4, [4, 4], [3, 3], bias="no"), TypeError,
     r"ResidualBlock: kwargs\['bias'\] must be True or False, got 'no'"),
    ("resnet-batchnorm-string",
     lambda: cnn.ResNet((1, 8, 8), 10, [4], 1, [8], batchnorm="False"), TypeError,
     r"batchnorm must be True or False, got 'False'"),
    ("resnet-bottleneck-int",
     lambda: cnn.ResNet((1, 8, 8), 10, [4], 1, [8], bottleneck=1), TypeError,
     r"bottleneck must be True or False, got 1"),
    ("cnn-conv-params-bias-string",
     lambda: cnn.CNN((1, 8, 8), 10, [4], 1, [8],
                     conv_params=dict(kernel_size=3, padding=1, bias="False")), TypeError,
     r"conv_params\['bias'\] must be True or False, got 'False'"),
    ("cnn-activation-inplace-string",
     lambda: cnn.CNN((1, 8, 8), 10, [4], 1, [8], activation_params=dict(inplace="yes")),
     TypeError, r"activation_params\['inplace'\] must be True or False, got 'yes'"),
    ("layer-train-mode-string", lambda: layers.MLP(4, 3, [5]).train("False"), TypeError,
     r"training_mode must be True or False, got 'False'"),
    ("roc-threshold-plot-string",
     lambda: select_roc_thresh(_tiny_classifier(), torch.randn(6, 2), [0, 1, 0, 1, 0, 1],
                               plot="no"), TypeError,
     r"select_roc_thresh: plot must be True or False, got 'no'"),
    # -- a model that cannot be allocated is a configuration error naming its sizes -----------
    ("experiment-model-too-large-for-memory",
     _huge_model_experiment, ExperimentConfigError,
     r"cannot build model_type='cnn' \(CNN\) with K=\[1048576, 1048576\], L=1, pool_every=1, "
     r"hidden_dims=\[8\] for digits images of shape \(1, 8, 8\): torch could not build it "
     r"\((RuntimeError|MemoryError): [^\n]*allocat[^\n]*\)$"),
]


#: Mistakes that reach the user as torch's own error, raised inside the loss (an ``nn.Module``):
#: ``nn.CrossEntropyLoss`` names the label that has no score column.
TORCH_OWN = [
    ("batch-label-minus-one", lambda: _train((_x(), torch.tensor([0, -1, 2, 0]))), IndexError,
     r"^Target -1 is out of bounds\.$"),
    ("batch-label-equal-to-class-count", lambda: _train((_x(), torch.tensor([0, 1, 3, 0]))),
     IndexError, r"^Target 3 is out of bounds\.$"),
    ("fit-test-label-too-large",
     lambda: _trainer().fit([(_x(), torch.tensor([0, 1, 2, 0]))],
                            [(_x(), torch.tensor([0, 1, 7, 0]))], num_epochs=1, print_every=0),
     IndexError, r"^Target 7 is out of bounds\.$"),
]


@pytest.mark.parametrize("call, exc_type, pattern",
                         [pytest.param(c, e, p, id=i) for i, c, e, p in TORCH_OWN])
def test_a_bad_label_gets_torchs_own_clear_message(call, exc_type, pattern):
    with pytest.raises(exc_type, match=pattern):
        call()


@pytest.mark.parametrize("call, exc_type, pattern",
                         [pytest.param(c, e, p, id=i) for i, c, e, p in CASES])
def test_mistake_gets_a_clear_message(call, exc_type, pattern):
    assert_clear_error(call, exc_type, pattern)


def test_only_the_first_batch_of_an_epoch_is_checked(monkeypatch):
    """The checks cost one call per epoch, not per batch (the hot loop stays unchanged)."""
    trainer = _trainer()
    calls = []
    real = ClassifierTrainer._check_batch
    monkeypatch.setattr(ClassifierTrainer, "_check_batch",
                        lambda self, batch: calls.append(1) or real(self, batch))
    batches = [(_x(), torch.tensor([0, 1, 2, 0]))] * 5
    trainer.fit(batches, batches, num_epochs=3, print_every=0)
    assert len(calls) == 6  # 3 epochs x (train + test)


def test_a_bad_label_after_the_first_batch_still_ends_in_torch_not_silently():
    """Later batches are not checked by hw2 (speed); torch still refuses them."""
    good, bad = (_x(), torch.tensor([0, 1, 2, 0])), (_x(), torch.tensor([0, 1, 9, 0]))
    with pytest.raises(IndexError):
        _trainer().train_epoch([good, bad], verbose=False)


def test_a_well_formed_float64_run_is_accepted():
    torch.manual_seed(0)
    model = ArgMaxClassifier(nn.Linear(4, 3)).double()
    trainer = ClassifierTrainer(model, nn.CrossEntropyLoss(),
                                torch.optim.SGD(model.parameters(), lr=0.1))
    result = trainer.train_epoch([(_x(dtype=torch.float64), torch.tensor([0, 1, 2, 0]))],
                                 verbose=False)
    assert len(result.losses) == 1
