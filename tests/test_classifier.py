"""Tests for hw2.classifier: probabilities, decision rules, decision boundaries and ROC thresholds.

The wrapped models are plain ``torch.nn`` modules. For exact control over the probabilities,
several tests wrap ``nn.Identity`` and feed log-probabilities, so that the softmax returns the
probabilities chosen by the test.
"""
import itertools

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402
import torch.nn as nn  # noqa: E402
from matplotlib.collections import PathCollection  # noqa: E402
from matplotlib.contour import ContourSet  # noqa: E402

from hw2.classifier import (  # noqa: E402
    ArgMaxClassifier,
    BinaryClassifier,
    Classifier,
    plot_decision_boundary_2d,
    select_roc_thresh,
)


@pytest.fixture(autouse=True)
def _close_figures():
    yield
    plt.close("all")


def mlp64(in_dim=2, out_dim=2, seed=0):
    """A small float64 MLP built from plain torch.nn layers."""
    torch.manual_seed(seed)
    return nn.Sequential(nn.Linear(in_dim, 16), nn.Tanh(), nn.Linear(16, out_dim)).double()


def log_probs(p_positive):
    """(N,) probabilities of class 1 -> (N, 2) scores whose softmax is [1-p, p] (float64)."""
    p = torch.as_tensor(p_positive, dtype=torch.float64)
    return torch.log(torch.stack([1 - p, p], dim=1))


class LinearBoundary(nn.Module):
    """Scores (N, 2) = [0, k * x1]: class 1 exactly where x1 > 0 (threshold 0.5)."""

    def __init__(self, k=10.0):
        super().__init__()
        self.k = nn.Parameter(torch.tensor(k), requires_grad=False)

    def forward(self, x):
        return torch.stack([torch.zeros_like(x[:, 0]), self.k * x[:, 0]], dim=1)


# ----------------------------------------------------------------------------------------------
# Classifier / BinaryClassifier / ArgMaxClassifier
# ----------------------------------------------------------------------------------------------


def test_classifier_is_abstract():
    with pytest.raises(TypeError):
        Classifier(nn.Identity())


@pytest.mark.parametrize("cls, out_dim", [(BinaryClassifier, 2), (ArgMaxClassifier, 2), (ArgMaxClassifier, 5)])
def test_forward_returns_raw_model_scores_with_grad(cls, out_dim):
    model = mlp64(3, out_dim)
    clf = cls(model)
    x = torch.randn(7, 3, dtype=torch.float64)
    z = clf(x)
    torch.testing.assert_close(z, model(x), rtol=0, atol=0)
    assert z.grad_fn is not None


@pytest.mark.parametrize("cls, out_dim", [(BinaryClassifier, 2), (ArgMaxClassifier, 4)])
def test_predict_proba_is_softmax_and_sums_to_one(cls, out_dim):
    model = mlp64(2, out_dim)
    clf = cls(model)
    x = torch.randn(11, 2, dtype=torch.float64) * 3
    proba = clf.predict_proba(x)
    expected = torch.exp(model(x) - torch.logsumexp(model(x), dim=1, keepdim=True))
    torch.testing.assert_close(proba, expected, rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(proba.sum(dim=1), torch.ones(11, dtype=torch.float64), rtol=0, atol=1e-12)
    torch.testing.assert_close(clf.predict_proba_scores(model(x)), expected, rtol=1e-12, atol=1e-12)


def test_printout_lists_model_then_softmax():
    clf = BinaryClassifier(nn.Linear(2, 2))
    assert str(clf).splitlines() == [
        "BinaryClassifier(",
        "  (model): Linear(in_features=2, out_features=2, bias=True)",
        "  (softmax): Softmax(dim=1)",
        ")",
    ]
    assert str(ArgMaxClassifier(nn.Identity())).splitlines()[0] == "ArgMaxClassifier("


@pytest.mark.parametrize("threshold", [0.0, 0.2, 0.5, 0.73, 1.0])
def test_binary_classify_applies_threshold(threshold):
    p = torch.tensor([0.0, 0.1, 0.2, 0.5, 0.73, 0.9, 1.0], dtype=torch.float64)
    clf = BinaryClassifier(nn.Identity(), threshold=threshold)
    y_hat = clf.classify(log_probs(p))
    # recompute the probabilities the classifier saw, to compare with >= exactly
    p_seen = torch.softmax(log_probs(p), dim=1)[:, 1]
    assert y_hat.dtype == torch.int
    assert y_hat.shape == (7,)
    assert y_hat.tolist() == [int(v >= threshold) for v in p_seen.tolist()]


def test_probability_equal_to_threshold_is_positive():
    clf = BinaryClassifier(nn.Identity(), threshold=0.5)
    assert clf.classify(torch.zeros(3, 2)).tolist() == [1, 1, 1]  # softmax gives exactly 0.5


@pytest.mark.parametrize("positive_class", [0, 1])
def test_extreme_thresholds(positive_class):
    clf = BinaryClassifier(mlp64(), positive_class=positive_class, threshold=0.0)
    x = torch.randn(40, 2, dtype=torch.float64) * 5
    assert (clf.classify(x) == positive_class).all()
    # Threshold 1: positive only where the positive probability is exactly 1 (a probability
    # above 1, which would predict nothing positive, is refused since thresholds are in [0, 1]).
    clf.threshold = 1.0
    p_pos = torch.softmax(clf.model(x), dim=1)[:, positive_class]
    expected = torch.where(p_pos >= 1.0, positive_class, 1 - positive_class)
    assert torch.equal(clf.classify(x).long(), expected.long())
    assert (p_pos < 1.0).any()  # some samples really are assigned the other class
    with pytest.raises(ValueError, match=r"threshold must be a probability in \[0, 1\] .*got 1\.000000001"):
        clf.threshold = 1.0 + 1e-9


def test_positive_class_zero_flips_the_rule():
    p1 = torch.tensor([0.05, 0.3, 0.45, 0.6, 0.95], dtype=torch.float64)
    for threshold in (0.25, 0.5, 0.7):
        clf0 = BinaryClassifier(nn.Identity(), positive_class=0, threshold=threshold)
        # class 0 is predicted when P(class 0) = 1 - p1 >= threshold
        expected = [0 if 1 - v >= threshold else 1 for v in p1.tolist()]
        assert clf0.classify(log_probs(p1)).tolist() == expected


@pytest.mark.parametrize("cls", [BinaryClassifier, ArgMaxClassifier])
def test_classify_scores_matches_classify(cls):
    model = mlp64()
    clf = cls(model)
    x = torch.randn(25, 2, dtype=torch.float64)
    assert torch.equal(clf.classify_scores(model(x)), clf.classify(x))


@pytest.mark.parametrize("n_classes", [2, 3, 10])
def test_argmax_matches_torch_argmax(n_classes):
    model = mlp64(4, n_classes, seed=n_classes)
    clf = ArgMaxClassifier(model)
    x = torch.randn(64, 4, dtype=torch.float64)
    y_hat = clf.classify(x)
    assert y_hat.dtype == torch.int
    assert torch.equal(y_hat, torch.argmax(model(x), dim=1).to(torch.int))


def test_binary_at_half_matches_argmax():
    model = mlp64(seed=3)
    x = torch.randn(100, 2, dtype=torch.float64)
    assert torch.equal(BinaryClassifier(model).classify(x), ArgMaxClassifier(model).classify(x))


def test_threshold_can_be_set_from_numpy_and_tensor():
    clf = BinaryClassifier(nn.Identity())
    clf.threshold = np.float32(0.25)
    assert clf.threshold == pytest.approx(0.25) and isinstance(clf.threshold, float)
    clf.threshold = torch.tensor(0.75)
    assert clf.threshold == pytest.approx(0.75) and isinstance(clf.threshold, float)


@pytest.mark.parametrize("kwargs, exc, words", [
    (dict(positive_class=2), ValueError, "positive_class must be 0 or 1"),
    (dict(positive_class=-1), ValueError, "positive_class must be 0 or 1"),
    (dict(positive_class=True), TypeError, "positive_class must be 0 or 1, got True"),
    (dict(threshold="0.5"), TypeError, r"threshold must be a probability in \[0, 1\] .*got '0\.5'"),
    (dict(threshold=None), TypeError, r"threshold must be a probability in \[0, 1\] .*got None"),
    (dict(threshold=float("nan")), ValueError, r"threshold must be a probability in \[0, 1\] .*got nan"),
])
def test_binary_classifier_rejects_bad_arguments(kwargs, exc, words):
    with pytest.raises(exc, match=words):
        BinaryClassifier(nn.Identity(), **kwargs)


def test_bad_threshold_assignment_is_rejected():
    clf = BinaryClassifier(nn.Identity())
    with pytest.raises(TypeError, match="threshold"):
        clf.threshold = [0.5]
    assert clf.threshold == 0.5


def test_model_must_be_a_module():
    with pytest.raises(TypeError, match="model must be a torch.nn.Module, got function"):
        ArgMaxClassifier(lambda x: x)


@pytest.mark.parametrize("model, x, words", [
    (nn.Linear(2, 3), torch.randn(4, 2), r"C=2 columns, got shape \(4, 3\)"),
    (nn.Identity(), torch.randn(4, 2, 1), r"2-D scores of shape \(N, C\), got shape \(4, 2, 1\)"),
    (nn.Flatten(0), torch.randn(4, 2), r"2-D scores of shape \(N, C\), got shape \(8,\)"),
])
def test_binary_forward_validates_model_output(model, x, words):
    with pytest.raises(ValueError, match=words):
        BinaryClassifier(model)(x)


def test_forward_validates_rows_and_input_type():
    class DropsARow(nn.Module):
        def forward(self, x):
            return x[1:]

    with pytest.raises(ValueError, match=r"one row per sample \(5\), got shape \(4, 3\)"):
        ArgMaxClassifier(DropsARow())(torch.randn(5, 3))
    with pytest.raises(TypeError, match="ArgMaxClassifier: model output must be a torch.Tensor, got ndarray"):
        ArgMaxClassifier(nn.Identity())(np.zeros((2, 2)))
    with pytest.raises(ValueError, match=r"z must be 2-D"):
        ArgMaxClassifier(nn.Identity()).classify_scores(torch.zeros(3))


# ----------------------------------------------------------------------------------------------
# plot_decision_boundary_2d
# ----------------------------------------------------------------------------------------------


def _blobs(n=60, seed=0):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, 2, generator=g) * 1.5
    y = (x[:, 0] > 0).long()
    return x, y


def test_decision_boundary_draws_regions_samples_and_labels():
    x, y = _blobs()
    fig, ax = plot_decision_boundary_2d(BinaryClassifier(LinearBoundary()), x, y, dx=0.05)
    assert fig is ax.figure
    contours = [c for c in ax.collections if isinstance(c, ContourSet)]
    scatters = [c for c in ax.collections if isinstance(c, PathCollection) and not isinstance(c, ContourSet)]
    assert len(contours) == 1 and len(scatters) == 1
    np.testing.assert_allclose(scatters[0].get_offsets(), x.numpy(), rtol=0, atol=1e-6)
    np.testing.assert_array_equal(np.asarray(scatters[0].get_array()), y.numpy())
    assert ax.get_xlabel() and ax.get_ylabel()
    # the grid covers every sample
    (x_lo, x_hi), (y_lo, y_hi) = ax.get_xlim(), ax.get_ylim()
    assert x_lo <= x[:, 0].min() and x[:, 0].max() <= x_hi
    assert y_lo <= x[:, 1].min() and x[:, 1].max() <= y_hi


def test_decision_boundary_regions_follow_the_classifier():
    """For a classifier that predicts class 1 exactly where x1 > 0, the region boundary is x1 = 0."""
    x, y = _blobs()
    _, ax = plot_decision_boundary_2d(BinaryClassifier(LinearBoundary()), x, y, dx=0.05)
    contour = next(c for c in ax.collections if isinstance(c, ContourSet))
    class_one_paths = contour.get_paths()[1]  # the band of levels (0.5, 1.5)
    vertices = class_one_paths.vertices
    assert len(vertices) > 0
    # every vertex of the class-1 region lies at x1 >= -dx (the boundary, up to one grid step)
    assert vertices[:, 0].min() >= -0.05 - 1e-9
    # and the class-0 region stays at x1 <= dx
    assert contour.get_paths()[0].vertices[:, 0].max() <= 0.05 + 1e-9


def test_decision_boundary_uses_given_axes_and_restores_training_mode():
    x, y = _blobs()
    clf = BinaryClassifier(nn.Sequential(nn.Linear(2, 4), nn.Dropout(0.5), nn.Linear(4, 2)))
    clf.train()
    fig, axes = plt.subplots(1, 2)
    out_fig, out_ax = plot_decision_boundary_2d(clf, x.numpy(), y.numpy(), ax=axes[1], cmap="coolwarm")
    assert out_fig is fig and out_ax is axes[1]
    assert not axes[0].collections
    assert clf.training


def test_decision_boundary_handles_multiclass():
    x, _ = _blobs(90)
    y = torch.randint(0, 3, (90,))
    _, ax = plot_decision_boundary_2d(ArgMaxClassifier(nn.Linear(2, 3)), x, y, dx=0.2)
    contour = next(c for c in ax.collections if isinstance(c, ContourSet))
    np.testing.assert_allclose(contour.levels, [-0.5, 0.5, 1.5, 2.5])


@pytest.mark.parametrize("x, y, dx, exc, words", [
    (torch.randn(5, 3), torch.zeros(5), 0.1, ValueError, r"x must be a non-empty batch of shape \(N, 2\)"),
    (torch.randn(5, 2), torch.zeros(4), 0.1, ValueError, r"y must have shape \(5,\)"),
    (torch.randn(5, 2), torch.full((5,), 0.5), 0.1, ValueError, "integer class labels"),
    (torch.randn(5, 2), torch.zeros(5), 0.0, ValueError, "dx must be a positive finite number"),
    (torch.randn(5, 2), torch.zeros(5), -1, ValueError, "dx must be a positive finite number"),
    (torch.randn(5, 2) * 1e3, torch.zeros(5), 1e-3, ValueError, "use a larger dx"),
])
def test_decision_boundary_rejects_bad_inputs(x, y, dx, exc, words):
    with pytest.raises(exc, match=words):
        plot_decision_boundary_2d(BinaryClassifier(nn.Linear(2, 2)), x, y, dx=dx)


def test_decision_boundary_requires_a_classifier():
    with pytest.raises(TypeError, match="classifier must be a hw2.classifier.Classifier, got Linear"):
        plot_decision_boundary_2d(nn.Linear(2, 2), torch.randn(3, 2), torch.zeros(3))


# ----------------------------------------------------------------------------------------------
# select_roc_thresh
# ----------------------------------------------------------------------------------------------


def roc_oracle(p_pos, y):
    """Closest-to-(0, 1) threshold by brute force: every distinct score is a candidate."""
    p_pos, y = np.asarray(p_pos, dtype=np.float64), np.asarray(y)
    n_pos, n_neg = (y == 1).sum(), (y == 0).sum()
    best_t, best_d = None, np.inf
    for t in sorted(set(p_pos.tolist()), reverse=True):
        tpr = ((p_pos >= t) & (y == 1)).sum() / n_pos
        fpr = ((p_pos >= t) & (y == 0)).sum() / n_neg
        d = np.hypot(fpr, 1 - tpr)
        if d < best_d:
            best_t, best_d = t, d
    return best_t


def test_roc_threshold_worked_by_hand():
    # positives: 0.9 0.8 0.55 0.4     negatives: 0.7 0.45 0.3 0.2 0.1
    # t     TPR   FPR   distance to (0, 1)
    # 0.9   1/4   0     0.75
    # 0.8   2/4   0     0.5
    # 0.7   2/4   1/5   sqrt(0.25 + 0.04)   = 0.539
    # 0.55  3/4   1/5   sqrt(0.0625 + 0.04) = 0.320  <- closest
    # 0.45  3/4   2/5   sqrt(0.0625 + 0.16) = 0.472
    # 0.4   1     2/5   0.4
    # 0.3   1     3/5   0.6 ... (and larger below)
    p = [0.9, 0.8, 0.55, 0.4, 0.7, 0.45, 0.3, 0.2, 0.1]
    y = torch.tensor([1, 1, 1, 1, 0, 0, 0, 0, 0])
    clf = BinaryClassifier(nn.Identity())
    assert select_roc_thresh(clf, log_probs(p), y) == pytest.approx(0.55, abs=1e-12)


def test_roc_threshold_considers_collinear_points():
    # 4 positives, 4 negatives. ROC points: (0,0) -> (0,.5) at t=.9 -> (.25,.75) at t=.8
    # -> (.5,1) at t=.7 -> (1,1). (.25,.75) lies on the segment between its neighbours, and is
    # the closest to (0,1): sqrt(.0625+.0625) = .354 < .5. It must not be dropped.
    p = [0.9, 0.9, 0.8, 0.7, 0.8, 0.7, 0.1, 0.1]
    y = torch.tensor([1, 1, 1, 1, 0, 0, 0, 0])
    clf = BinaryClassifier(nn.Identity())
    assert select_roc_thresh(clf, log_probs(p), y) == pytest.approx(0.8, abs=1e-12)


@pytest.mark.parametrize("seed", range(5))
def test_roc_threshold_matches_brute_force(seed):
    g = torch.Generator().manual_seed(seed)
    y = torch.randint(0, 2, (200,), generator=g)
    p = torch.sigmoid(1.5 * (2 * y.double() - 1) + torch.randn(200, generator=g, dtype=torch.float64))
    p = torch.round(p * 50) / 50  # ties between samples of both classes
    p = p.clamp(0.01, 0.99)
    clf = BinaryClassifier(nn.Identity())
    expected = roc_oracle(torch.softmax(log_probs(p), dim=1)[:, 1].numpy(), y.numpy())
    assert select_roc_thresh(clf, log_probs(p), y) == pytest.approx(expected, abs=1e-12)


def test_roc_threshold_with_positive_class_zero():
    p1 = torch.tensor([0.1, 0.2, 0.45, 0.6, 0.3, 0.55, 0.7, 0.8, 0.9], dtype=torch.float64)
    y = torch.tensor([0, 0, 0, 0, 1, 1, 1, 1, 1])
    clf = BinaryClassifier(nn.Identity(), positive_class=0)
    p0 = torch.softmax(log_probs(p1), dim=1)[:, 0].numpy()
    expected = roc_oracle(p0, (y == 0).numpy().astype(int))
    assert select_roc_thresh(clf, log_probs(p1), y) == pytest.approx(expected, abs=1e-12)


def test_roc_threshold_is_finite_for_an_inverted_classifier():
    # positives all score below negatives: the best finite point is (1, 1) at the lowest score
    p = [0.1, 0.2, 0.3, 0.7, 0.8, 0.9]
    y = torch.tensor([1, 1, 1, 0, 0, 0])
    thresh = select_roc_thresh(BinaryClassifier(nn.Identity()), log_probs(p), y)
    assert np.isfinite(thresh)
    assert 0.0 <= thresh <= 1.0


def test_roc_threshold_of_a_perfect_classifier_separates_the_classes():
    p = [0.05, 0.2, 0.35, 0.6, 0.75, 0.95]
    y = torch.tensor([0, 0, 0, 1, 1, 1])
    clf = BinaryClassifier(nn.Identity())
    clf.threshold = select_roc_thresh(clf, log_probs(p), y)
    assert clf.threshold == pytest.approx(0.6, abs=1e-12)
    assert clf.classify(log_probs(p)).tolist() == y.tolist()


def test_roc_plot_marks_the_selected_point():
    p = [0.9, 0.8, 0.55, 0.4, 0.7, 0.45, 0.3, 0.2, 0.1]
    y = np.array([1, 1, 1, 1, 0, 0, 0, 0, 0])
    thresh = select_roc_thresh(BinaryClassifier(nn.Identity()), log_probs(p).numpy(), y, plot=True)
    ax = plt.gcf().axes[0]
    assert "FPR" in ax.get_xlabel() and "TPR" in ax.get_ylabel()
    labels = [t.get_text() for t in ax.get_legend().get_texts()]
    assert any("ROC" in label for label in labels)
    assert any(f"{thresh:.3f}" in label for label in labels)
    marker = next(c for c in ax.collections if isinstance(c, PathCollection))
    np.testing.assert_allclose(marker.get_offsets(), [[0.2, 0.75]])


def test_roc_restores_training_mode_and_works_with_a_trainable_model():
    clf = BinaryClassifier(nn.Sequential(nn.Linear(2, 8), nn.Dropout(0.5), nn.Linear(8, 2)))
    clf.train()
    x, y = _blobs(80)
    t1 = select_roc_thresh(clf, x, y)
    t2 = select_roc_thresh(clf, x, y)
    assert t1 == t2  # evaluated in eval mode: dropout is off, so the result is deterministic
    assert clf.training


@pytest.mark.parametrize("x, y, exc, words", [
    (torch.zeros(4, 2), torch.tensor([1, 1, 1, 1]), ValueError, "both binary labels 0 and 1"),
    (torch.zeros(4, 2), torch.tensor([0, 1, 2, 1]), ValueError, "both binary labels 0 and 1"),
    (torch.zeros(4, 2), torch.tensor([0, 1, 0]), ValueError, r"y must have shape \(4,\)"),
    (torch.zeros(4), torch.tensor([0, 1, 0, 1]), ValueError, r"x must be a non-empty batch"),
])
def test_roc_rejects_bad_inputs(x, y, exc, words):
    with pytest.raises(exc, match=words):
        select_roc_thresh(BinaryClassifier(nn.Identity()), x, y)


def test_roc_requires_two_class_scores():
    with pytest.raises(ValueError, match="2 class scores, got 3"):
        select_roc_thresh(ArgMaxClassifier(nn.Identity()), torch.zeros(4, 3), torch.tensor([0, 1, 0, 1]))


def test_tools_do_not_change_gradients_or_parameters():
    model = mlp64()
    clf = BinaryClassifier(model)
    before = [p.detach().clone() for p in model.parameters()]
    x, y = _blobs(50)
    select_roc_thresh(clf, x.double(), y)
    plot_decision_boundary_2d(clf, x, y, dx=0.25)
    for p, p0 in zip(model.parameters(), before):
        assert p.grad is None
        assert torch.equal(p, p0)


def test_all_pairs_of_binary_settings_agree_with_probabilities():
    """Property over a grid of (positive_class, threshold): labels follow the stated rule."""
    model = mlp64(seed=7)
    x = torch.randn(60, 2, dtype=torch.float64) * 2
    proba = torch.softmax(model(x), dim=1)
    for positive_class, threshold in itertools.product((0, 1), (0.1, 0.35, 0.5, 0.8)):
        clf = BinaryClassifier(model, positive_class=positive_class, threshold=threshold)
        expected = torch.where(proba[:, positive_class] >= threshold, positive_class, 1 - positive_class)
        assert torch.equal(clf.classify(x), expected.to(torch.int))


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_tools_accept_cpu_data_for_a_cuda_model():
    model = mlp64()
    x, y = _blobs(50)
    cpu_clf = BinaryClassifier(model)
    expected = select_roc_thresh(cpu_clf, x.double(), y)
    cuda_clf = BinaryClassifier(mlp64()).cuda()
    cuda_clf.load_state_dict(cpu_clf.state_dict())
    assert select_roc_thresh(cuda_clf, x.double(), y) == pytest.approx(expected, abs=1e-9)
    _, ax = plot_decision_boundary_2d(cuda_clf, x, y, dx=0.25)
    assert any(isinstance(c, ContourSet) for c in ax.collections)
