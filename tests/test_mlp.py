"""Tests for hw2.mlp: structure, printout, numerics against plain torch.nn, and errors."""
import copy

import pytest
import torch
import torch.nn as nn

from hw2.mlp import MLP, NONLINEARITIES, make_nonlinearity

# The seed notebook's printout of this network (Part 3, "Simple MLP"), with the one documented
# difference: our softmax normalises over dim=1 explicitly instead of the deprecated dim=None.
SEED_MLP_PRINTOUT = """\
MLP(
  (seq): Sequential(
    (0): Linear(in_features=2, out_features=8, bias=True)
    (1): ReLU()
    (2): Linear(in_features=8, out_features=16, bias=True)
    (3): Tanh()
    (4): Linear(in_features=16, out_features=32, bias=True)
    (5): LeakyReLU(negative_slope=0.314)
    (6): Linear(in_features=32, out_features=64, bias=True)
    (7): Softmax(dim=1)
  )
)"""

# The seed's binary classifier body: three hidden ReLU layers of width 10, raw scores out.
SEED_BINARY_MLP_PRINTOUT = """\
MLP(
  (seq): Sequential(
    (0): Linear(in_features=2, out_features=10, bias=True)
    (1): ReLU()
    (2): Linear(in_features=10, out_features=10, bias=True)
    (3): ReLU()
    (4): Linear(in_features=10, out_features=10, bias=True)
    (5): ReLU()
    (6): Linear(in_features=10, out_features=2, bias=True)
    (7): Identity()
  )
)"""


def seed_mlp():
    return MLP(in_dim=2, dims=[8, 16, 32, 64],
               nonlins=["relu", "tanh", nn.LeakyReLU(0.314), "softmax"])


def test_seed_checks():
    batch_size = 32
    mlp = seed_mlp()
    x = torch.randn(batch_size, 2)
    yhat = mlp(x)
    assert len(list(mlp.parameters())) == 8
    assert yhat.shape == (batch_size, mlp.out_dim)
    torch.testing.assert_close(yhat.sum(dim=1), torch.ones(batch_size))
    assert yhat.grad_fn is not None
    assert (mlp.in_dim, mlp.out_dim) == (2, 64)
    assert isinstance(mlp.seq, nn.Sequential)


def test_printout_matches_seed():
    assert str(seed_mlp()) == SEED_MLP_PRINTOUT
    binary = MLP(in_dim=2, dims=[*[10] * 3, 2], nonlins=[*["relu"] * 3, "none"])
    assert str(binary) == SEED_BINARY_MLP_PRINTOUT


def test_softmax_emits_no_implicit_dim_warning(recwarn):
    MLP(3, [4], ["softmax"])(torch.randn(5, 3))
    MLP(3, [4], ["logsoftmax"])(torch.randn(5, 3))
    assert not [w for w in recwarn if "dim" in str(w.message)]


@pytest.mark.parametrize("seed", [0, 7])
def test_equals_plain_sequential_built_with_same_seed(seed):
    torch.manual_seed(seed)
    mlp = MLP(5, [7, 6, 3], ["tanh", "lrelu", "logsoftmax"]).double()
    torch.manual_seed(seed)
    reference = nn.Sequential(
        nn.Linear(5, 7), nn.Tanh(), nn.Linear(7, 6), nn.LeakyReLU(), nn.Linear(6, 3),
        nn.LogSoftmax(dim=1),
    ).double()
    for ours, theirs in zip(mlp.parameters(), reference.parameters()):
        torch.testing.assert_close(ours, theirs, rtol=0, atol=0)
    x = torch.randn(11, 5, dtype=torch.float64, requires_grad=True)
    torch.testing.assert_close(mlp(x), reference(x), rtol=1e-12, atol=1e-12)
    (g_ours,) = torch.autograd.grad(mlp(x).sum(), x)
    (g_ref,) = torch.autograd.grad(reference(x).sum(), x)
    torch.testing.assert_close(g_ours, g_ref, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize(
    "name, cls",
    [("relu", nn.ReLU), ("tanh", nn.Tanh), ("sigmoid", nn.Sigmoid), ("softmax", nn.Softmax),
     ("logsoftmax", nn.LogSoftmax), ("lrelu", nn.LeakyReLU), ("none", nn.Identity),
     ("ReLU", nn.ReLU)],
)
def test_nonlinearity_names(name, cls):
    module = make_nonlinearity(name)
    assert type(module) is cls
    mlp = MLP(4, [3], [name])
    assert type(mlp.seq[1]) is cls


def test_every_registered_name_builds():
    for name in NONLINEARITIES:
        assert isinstance(make_nonlinearity(name), nn.Module)


def test_module_nonlinearity_is_used_as_given():
    act = nn.ELU(alpha=0.5)
    mlp = MLP(4, [3, 2], [act, "none"])
    assert mlp.seq[1] is act
    x = torch.randn(6, 4)
    expected = mlp.seq[2](nn.functional.elu(mlp.seq[0](x), alpha=0.5))
    torch.testing.assert_close(mlp(x), expected)


def test_unknown_name_lists_valid_ones():
    with pytest.raises(ValueError) as err:
        MLP(2, [3], ["swish"])
    message = str(err.value)
    assert "'swish'" in message
    for name in NONLINEARITIES:
        assert name in message


@pytest.mark.parametrize(
    "kwargs, fragment",
    [
        (dict(in_dim=2, dims=[3, 4], nonlins=["relu"]), "same length"),
        (dict(in_dim=2, dims=[], nonlins=[]), "dims"),
        (dict(in_dim=0, dims=[3], nonlins=["relu"]), "in_dim"),
        (dict(in_dim=2, dims=[3, -1], nonlins=["relu", "none"]), "dims[1]"),
    ],
)
def test_bad_configuration_raises_value_error(kwargs, fragment):
    with pytest.raises(ValueError, match=fragment.replace("[", r"\[").replace("]", r"\]")):
        MLP(**kwargs)


# A size that is no integer at all is of the wrong type: TypeError, as everywhere in hw2.
@pytest.mark.parametrize("kwargs, fragment", [
    (dict(in_dim=2.5, dims=[3], nonlins=["relu"]), "in_dim must be an integer >= 1, got 2.5"),
    (dict(in_dim=True, dims=[3], nonlins=["relu"]), "in_dim must be an integer >= 1, got True"),
    (dict(in_dim=2, dims=[3, "4"], nonlins=["relu", "none"]), "dims[1]"),
])
def test_sizes_of_the_wrong_type_raise_type_error(kwargs, fragment):
    with pytest.raises(TypeError, match=fragment.replace("[", r"\[").replace("]", r"\]")):
        MLP(**kwargs)


def test_numpy_sizes_are_accepted():
    np = pytest.importorskip("numpy")
    mlp = MLP(np.int64(3), np.array([4, 2]), ["relu", "none"])
    assert (mlp.in_dim, mlp.out_dim) == (3, 2) and type(mlp.in_dim) is int
    assert [m.out_features for m in mlp.seq if isinstance(m, nn.Linear)] == [4, 2]


def test_course_activation_tables():
    from hw2.mlp import ACTIVATION_DEFAULT_KWARGS, ACTIVATIONS
    assert set(ACTIVATIONS) == set(NONLINEARITIES)
    for name, cls in ACTIVATIONS.items():
        assert isinstance(cls, type) and issubclass(cls, nn.Module), name
        built = NONLINEARITIES[name]()
        assert type(built) is cls
        kwargs = ACTIVATION_DEFAULT_KWARGS[name]
        assert type(cls(**kwargs)) is cls
        for key, value in kwargs.items():
            assert getattr(built, key) == value
    assert ACTIVATION_DEFAULT_KWARGS["softmax"] == {"dim": 1} == ACTIVATION_DEFAULT_KWARGS["logsoftmax"]
    assert ACTIVATION_DEFAULT_KWARGS["relu"] == {}
    assert copy.copy(ACTIVATION_DEFAULT_KWARGS)["gelu"] == {}  # any other name: no kwargs
    x = torch.randn(4, 3)
    torch.testing.assert_close(NONLINEARITIES["softmax"]()(x).sum(dim=1), torch.ones(4))
    # The defaults are copied into each module: changing one module changes no table.
    NONLINEARITIES["softmax"]().dim = 0
    assert ACTIVATION_DEFAULT_KWARGS["softmax"] == {"dim": 1}


def test_bad_nonlinearity_type_raises_type_error():
    with pytest.raises(TypeError, match=r"nonlins\[0\] must be one of relu, .*, got <built-in"):
        MLP(2, [3], [torch.relu])


def test_wrong_input_width_is_left_to_torch():
    """The validation policy: a batch of the wrong width is torch's own error inside the first
    nn.Linear (a RuntimeError naming both shapes), as in plain torch.nn.Sequential."""
    mlp = MLP(4, [3], ["relu"])
    plain = nn.Sequential(nn.Linear(4, 3), nn.ReLU())
    with pytest.raises(RuntimeError) as ours:
        mlp(torch.randn(10, 5))
    with pytest.raises(RuntimeError) as theirs:
        plain(torch.randn(10, 5))
    assert str(ours.value) == str(theirs.value)
