"""The tensor-resident loader gives the DataLoader's batches, and augments correctly."""
import pytest
import torch
from torch.utils.data import DataLoader

from hw2.datasets import make_synthetic
from hw2.tensor_data import TensorLoader, dataset_tensors


@pytest.fixture(scope="module")
def small():
    ds_train, _ = make_synthetic(n_train=300, n_test=10)
    return ds_train


@pytest.mark.parametrize("shuffle", [False, True])
@pytest.mark.parametrize("batch_size", [32, 300, 1000])
def test_same_batches_as_dataloader_for_same_seed(small, shuffle, batch_size):
    images, targets = dataset_tensors(small)
    fast = TensorLoader(images, targets, batch_size, shuffle=shuffle, seed=7)
    plain = DataLoader(small, batch_size, shuffle=shuffle,
                       generator=torch.Generator().manual_seed(7))
    assert len(fast) == len(plain)
    for epoch in range(2):  # the second epoch continues both generators alike
        pairs = list(zip(fast, plain, strict=True))
        for (xf, yf), (xp, yp) in pairs:
            torch.testing.assert_close(xf, xp, rtol=0, atol=0)
            assert torch.equal(yf, yp)


def test_normalisation_and_channels_last(small):
    images, targets = dataset_tensors(small)
    mean, std = [0.5, 0.4, 0.3], [0.2, 0.25, 0.3]
    x, _ = next(iter(TensorLoader(images, targets, 16, mean=mean, std=std, channels_last=True)))
    raw = images[:16].float() / 255
    expected = (raw - torch.tensor(mean).view(1, 3, 1, 1)) / torch.tensor(std).view(1, 3, 1, 1)
    torch.testing.assert_close(x, expected)
    assert x.is_contiguous(memory_format=torch.channels_last)


def test_augmentation_is_a_padded_crop_or_its_mirror():
    images = torch.rand(64, 3, 8, 8)
    targets = torch.arange(64)
    loader = TensorLoader(images, targets, 64, augment=True, crop_padding=2, seed=0)
    x, y = next(iter(loader))
    padded = torch.nn.functional.pad(images, (2, 2, 2, 2))
    flipped_seen = shifted_seen = False
    for i in range(64):
        candidates = [(dy, dx, flip) for dy in range(5) for dx in range(5) for flip in (False, True)]
        match = None
        for dy, dx, flip in candidates:
            crop = padded[y[i], :, dy:dy + 8, dx:dx + 8]
            if torch.equal(crop.flip(-1) if flip else crop, x[i]):
                match = (dy, dx, flip)
                break
        assert match is not None, f"sample {i} is not a crop of its padded source"
        flipped_seen |= match[2]
        shifted_seen |= match[:2] != (2, 2)
    assert flipped_seen and shifted_seen


def test_dataset_tensors_of_torchvision_style_datasets():
    class CifarLike:
        data = (torch.rand(5, 4, 4, 3) * 255).to(torch.uint8).numpy()
        targets = [0, 1, 2, 3, 4]

    images, targets = dataset_tensors(CifarLike())
    assert images.shape == (5, 3, 4, 4) and images.dtype == torch.uint8
    assert torch.equal(images[2, 1], torch.as_tensor(CifarLike.data[2, :, :, 1]))
    assert targets.tolist() == [0, 1, 2, 3, 4]
    with pytest.raises(TypeError, match="in-memory images"):
        dataset_tensors([(torch.zeros(1), 0)])


def test_bad_arguments_are_named():
    with pytest.raises(ValueError, match=r"batch_size must be a positive integer, got 0"):
        TensorLoader(torch.zeros(2, 1, 2, 2), torch.zeros(2), 0)
    with pytest.raises(ValueError, match=r"images \(N, C, H, W\).*\(2, 2, 2\)"):
        TensorLoader(torch.zeros(2, 2, 2), torch.zeros(2), 1)
    with pytest.raises(ValueError, match="mean must have 1 or 1 values, got 3"):
        TensorLoader(torch.zeros(2, 1, 2, 2), torch.zeros(2), 1, mean=[0.1, 0.2, 0.3])
