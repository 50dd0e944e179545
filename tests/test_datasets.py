"""Tests for hw2.datasets: the offline data sets, the stand-in's honesty, clear offline errors."""
import pytest
import torch

from hw2 import datasets


@pytest.fixture(scope="module")
def synthetic():
    return datasets.make_synthetic(n_train=3000, n_test=1000)


@pytest.mark.parametrize("name", ["digits", "synthetic"])
def test_offline_datasets_shapes_dtypes_ranges(name):
    ds_train, ds_test = datasets.load_dataset(name, verbose=False)
    info = datasets.dataset_info(name)
    for ds in (ds_train, ds_test):
        x, y = ds[0]
        assert x.dtype == torch.float32 and tuple(x.shape) == info.in_size
        assert isinstance(y, int)
        assert 0.0 <= float(ds.images.min()) and float(ds.images.float().max()) <= 255.0
        xs = torch.stack([ds[i][0] for i in range(50)])
        assert 0.0 <= xs.min() and xs.max() <= 1.0
        assert set(ds.targets.tolist()) == set(range(info.num_classes))
    assert len(ds_train) > len(ds_test) > 0


def test_digits_is_the_real_sklearn_data():
    from sklearn.datasets import load_digits
    ds_train, ds_test = datasets.load_dataset("digits", verbose=False)
    assert len(ds_train) + len(ds_test) == len(load_digits().target) == 1797
    # Every image is one of sklearn's, scaled by 1/16.
    raw = torch.from_numpy(load_digits().images).float() / 16
    x, _ = ds_test[0]
    assert (raw - x[0]).abs().flatten(1).sum(1).min() == 0


@pytest.mark.parametrize("name", ["digits", "synthetic"])
def test_loading_is_deterministic(name):
    a_train, a_test = datasets.load_dataset(name, verbose=False)
    b_train, b_test = datasets.load_dataset(name, verbose=False)
    assert torch.equal(a_train.images, b_train.images) and torch.equal(a_test.targets, b_test.targets)


def test_synthetic_is_learnable_but_not_trivial(synthetic):
    # A nearest-class-mean classifier, the simplest learner there is, must clearly beat chance
    # (10%) without solving the task.
    ds_train, ds_test = synthetic
    x_train = ds_train.images.flatten(1).float() / 255
    x_test = ds_test.images.flatten(1).float() / 255
    means = torch.stack([x_train[ds_train.targets == c].mean(0) for c in range(10)])
    acc = (torch.cdist(x_test, means).argmin(1) == ds_test.targets).float().mean().item()
    assert 0.2 < acc < 0.9, f"nearest-mean accuracy {acc:.2f} should be well above chance but not perfect"


def test_synthetic_announces_itself(capsys):
    datasets.load_dataset("synthetic", verbose=True)
    out = capsys.readouterr().out
    assert "synthetic" in out and "NOT CIFAR-10" in out
    assert datasets.dataset_info("synthetic").real is False
    assert datasets.dataset_info("cifar10").real is True


def test_default_name_and_quick_mode_follow_environment(monkeypatch):
    monkeypatch.delenv("HW2_DATASET", raising=False)
    assert datasets.default_dataset_name() == "cifar10"
    monkeypatch.setenv("HW2_DATASET", "Digits")
    assert datasets.default_dataset_name() == "digits"
    monkeypatch.setenv("HW2_DATASET", "imagenet")
    with pytest.raises(ValueError, match=r"^HW2_DATASET must be one of cifar10, mnist, "
                                         r"fashion-mnist, digits, synthetic, got 'imagenet'$"):
        datasets.default_dataset_name()
    for value, expected in [("1", True), ("true", True), ("0", False), ("", False)]:
        monkeypatch.setenv("HW2_QUICK", value)
        assert datasets.quick_mode() is expected


def test_unknown_name_lists_the_valid_ones():
    with pytest.raises(ValueError, match=r"^dataset name must be one of .*synthetic, got 'svhn'$"):
        datasets.load_dataset("svhn")


@pytest.mark.parametrize("name", [3, ["mnist"], b"mnist"])
def test_a_name_that_is_no_string_is_a_type_error(name):
    with pytest.raises(TypeError, match=r"^dataset name must be one of cifar10, .*, got "):
        datasets.dataset_info(name)


@pytest.mark.parametrize("name, expected", [("MNIST", "mnist"), ("Fashion-MNIST", "fashion-mnist"),
                                            ("digits", "digits")])
def test_a_name_in_any_case_is_accepted(name, expected):
    assert datasets.check_dataset_name(name) == expected
    assert datasets.dataset_info(name).name == expected


@pytest.mark.parametrize("name, folder", [("cifar10", "cifar-10-batches-py"),
                                          ("mnist", "MNIST"), ("fashion-mnist", "FashionMNIST")])
def test_missing_real_data_says_where_to_put_it(name, folder, tmp_path):
    with pytest.raises(datasets.DatasetUnavailableError) as info:
        datasets.load_dataset(name, root=tmp_path, download=False, verbose=False)
    message = str(info.value)
    assert str(tmp_path) in message and folder in message
    assert "HW2_DATASET=digits" in message and "HW2_DATA_DIR" in message


def test_roll_each_matches_torch_roll():
    images = torch.arange(2 * 3 * 5 * 6, dtype=torch.float32).view(2, 3, 5, 6)
    shifts = torch.tensor([[1, -2], [-3, 4]])
    out = datasets._roll_each(images, shifts)
    for i in range(2):
        expected = torch.roll(images[i], shifts=tuple(shifts[i].tolist()), dims=(1, 2))
        torch.testing.assert_close(out[i], expected)


@pytest.mark.parametrize("name, subfolder", [
    ("cifar10", "cifar-10-batches-py"), ("mnist", "MNIST/raw"),
    ("fashion-mnist", "FashionMNIST/raw"), ("digits", None), ("synthetic", None),
])
def test_dataset_folder_is_where_torchvision_reads_the_files(tmp_path, monkeypatch, name,
                                                             subfolder):
    monkeypatch.setenv("HW2_DATA_DIR", str(tmp_path))
    expected = None if subfolder is None else tmp_path / subfolder
    assert datasets.dataset_folder(name) == expected
    assert datasets.dataset_folder(name.upper(), root=tmp_path / "x") == (
        None if subfolder is None else tmp_path / "x" / subfolder)


def test_dataset_folder_of_cifar10_holds_torchvisions_own_files(tmp_path):
    # Oracle: torchvision's CIFAR10 class, which names the folder it checks (base_folder).
    from torchvision.datasets import CIFAR10
    assert datasets.dataset_folder("cifar10", root=tmp_path) == tmp_path / CIFAR10.base_folder


def test_dataset_folder_refuses_an_unknown_name():
    with pytest.raises(ValueError, match="dataset name must be one of .*, got 'imagenet'"):
        datasets.dataset_folder("imagenet")
