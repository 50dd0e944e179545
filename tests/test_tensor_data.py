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


# ----------------------------------------------------------------------------------------------
# Batches are fresh tensors: one that is still referenced keeps its values
# ----------------------------------------------------------------------------------------------

LOADER_SETTINGS = {
    "plain": dict(),
    "augment": dict(augment=True, crop_padding=3),
    "normalise-channels-last": dict(mean=[0.5, 0.4, 0.3], std=[0.2, 0.25, 0.3], channels_last=True),
    "all": dict(augment=True, mean=[0.5], std=[0.25], channels_last=True),
}


def _loader(small, batch_size=64, **kw):
    return TensorLoader(*dataset_tensors(small), batch_size, shuffle=True, seed=3, **kw)


@pytest.mark.parametrize("setting", sorted(LOADER_SETTINGS))
def test_batches_kept_equal_batches_streamed(small, setting):
    kw = LOADER_SETTINGS[setting]
    kept = list(_loader(small, **kw))             # every batch held at once
    streamed = [(x.clone(), y.clone()) for x, y in _loader(small, **kw)]
    assert len(kept) == len(streamed) == 5        # 300 = 4 x 64 + 44
    for (xk, yk), (xs, ys) in zip(kept, streamed):
        assert torch.equal(xk, xs) and torch.equal(yk, ys)
        assert xk.is_contiguous(memory_format=torch.channels_last) == bool(kw.get("channels_last"))


def test_a_batch_still_referenced_is_never_overwritten(small):
    # A view of the first batch, an autograd graph over the second, the third dropped: the
    # first two keep their values through a whole epoch of further batches.
    batches = iter(_loader(small, batch_size=16))
    x0, _ = next(batches)
    view, expected_view = x0[:2], x0[:2].clone()
    del x0
    x1, _ = next(batches)
    weight = torch.ones(3, requires_grad=True)
    graph_out = (x1 * weight.view(1, 3, 1, 1)).sum()  # autograd saved x1 for backward
    expected_grad = x1.sum(dim=(0, 2, 3))
    del x1
    for _ in batches:
        pass
    assert torch.equal(view, expected_view)
    graph_out.backward()
    torch.testing.assert_close(weight.grad, expected_grad)


def test_augmented_batches_follow_the_seeded_draws_of_the_documented_algorithm():
    # Independent reconstruction, sample by sample: the generator is seeded, gives DataLoader's
    # base-seed draw and the permutation, then per batch (crop offsets (b, 2), flip draws (b,)).
    images = (torch.rand(40, 3, 6, 5, generator=torch.Generator().manual_seed(1)) * 255).to(torch.uint8)
    targets = torch.arange(40)
    p, bs = 2, 16
    loader = TensorLoader(images, targets, bs, shuffle=True, seed=11, augment=True, crop_padding=p)
    gen = torch.Generator().manual_seed(11)
    torch.empty((), dtype=torch.int64).random_(generator=gen)
    order = torch.randperm(40, generator=gen)
    padded = torch.nn.functional.pad(images.float() / 255, (p, p, p, p))
    for start, (x, y) in zip(range(0, 40, bs), loader):
        idx = order[start:start + bs]
        offsets = torch.randint(0, 2 * p + 1, (len(idx), 2), generator=gen)
        flips = torch.rand(len(idx), generator=gen) < 0.5
        for k, i in enumerate(idx.tolist()):
            dy, dx = offsets[k].tolist()
            crop = padded[i, :, dy:dy + 6, dx:dx + 5]
            assert torch.equal(x[k], crop.flip(-1) if flips[k] else crop)
        assert torch.equal(y, targets[idx])


# ----------------------------------------------------------------------------------------------
# Image dtypes
# ----------------------------------------------------------------------------------------------


@pytest.mark.parametrize("dtype", [torch.int16, torch.int32, torch.int64, torch.uint8])
def test_integer_images_of_0_to_255_are_scaled_as_uint8(small, dtype):
    images, targets = dataset_tensors(small)
    reference = list(TensorLoader(images, targets, 100, shuffle=True, seed=1))
    batches = list(TensorLoader(images.to(dtype), targets, 100, shuffle=True, seed=1))
    for (xr, yr), (xb, yb) in zip(reference, batches, strict=True):
        assert torch.equal(xb, xr) and torch.equal(yb, yr)
    assert float(batches[0][0].max()) <= 1.0


@pytest.mark.parametrize("dtype", [torch.float16, torch.float64, torch.bfloat16])
def test_float_images_are_converted_to_float32_unscaled(dtype):
    images = torch.rand(10, 2, 3, 3).to(dtype)
    x, _ = next(iter(TensorLoader(images, torch.arange(10), 10)))
    assert x.dtype == torch.float32
    assert torch.equal(x, images.float())


# ----------------------------------------------------------------------------------------------
# Bad input: numpy integers welcome, wrong types TypeError, bad values ValueError
# ----------------------------------------------------------------------------------------------


def test_numpy_integers_are_accepted(small):
    import numpy as np

    images, targets = dataset_tensors(small)
    loader = TensorLoader(images, targets, np.int64(8), shuffle=np.bool_(True), seed=np.int32(5),
                          augment=True, crop_padding=np.int16(2))
    assert loader.batch_size == 8 and type(loader.batch_size) is int
    assert len(loader) == 38
    x, y = next(iter(loader))
    assert x.shape == (8, 3, 32, 32) and y.shape == (8,)


@pytest.mark.parametrize("kwargs, exc, message", [
    (dict(batch_size=2.5), TypeError, r"batch_size must be a positive integer, got 2\.5"),
    (dict(batch_size="8"), TypeError, r"batch_size must be a positive integer, got '8'"),
    (dict(batch_size=True), TypeError, r"batch_size must be a positive integer, got True"),
    (dict(batch_size=-3), ValueError, r"batch_size must be a positive integer, got -3"),
    (dict(crop_padding=1.0), TypeError, r"crop_padding must be a non-negative integer, got 1\.0"),
    (dict(seed=-1), ValueError, r"seed must be an integer in \[0, 2\*\*64\), got -1"),
    (dict(seed=2 ** 64), ValueError, r"seed must be an integer in \[0, 2\*\*64\), got 18446744073709551616"),
    (dict(seed="7"), TypeError, r"seed must be an integer in \[0, 2\*\*64\), got '7'"),
    (dict(shuffle="yes"), TypeError, r"shuffle must be True or False, got 'yes'"),
    (dict(drop_last=1), TypeError, r"drop_last must be True or False, got 1"),
    (dict(mean="abc"), TypeError, r"mean must be a number or a sequence of numbers, got str"),
    (dict(device="nope"), ValueError, r"device must be a torch.device, a string such as 'cpu' or "
                                      r"'cuda:0', or None, got 'nope'"),
])
def test_bad_arguments_are_refused_with_their_names(kwargs, exc, message):
    kw = dict(batch_size=2, **kwargs) if "batch_size" not in kwargs else kwargs
    with pytest.raises(exc, match=message):
        TensorLoader(torch.zeros(4, 1, 2, 2), torch.zeros(4, dtype=torch.long), **kw)


@pytest.mark.parametrize("images, exc, message", [
    (torch.full((2, 1, 2, 2), 256, dtype=torch.int32), ValueError,
     r"integer images are scaled as uint8 \(divided by 255\), so they must hold values in "
     r"0\.\.255; got dtype torch\.int32 with values in 256\.\.256"),
    (torch.full((2, 1, 2, 2), -1, dtype=torch.int64), ValueError,
     r"got dtype torch\.int64 with values in -1\.\.-1 \(convert them to float in \[0, 1\]"),
    (torch.zeros(2, 1, 2, 2, dtype=torch.bool), TypeError,
     r"images must be uint8, another integer dtype holding 0\.\.255, or floating point, got "
     r"dtype torch\.bool"),
])
def test_images_that_cannot_be_scaled_are_refused(images, exc, message):
    with pytest.raises(exc, match=message):
        TensorLoader(images, torch.zeros(2, dtype=torch.long), 1)


def test_two_iterators_over_one_loader_do_not_share_a_batch(small):
    loader = TensorLoader(*dataset_tensors(small), 32)
    expected = list(TensorLoader(*dataset_tensors(small), 32))
    for (xa, ya), (xb, yb), (xe, ye) in zip(loader, loader, expected, strict=True):
        assert xa.data_ptr() != xb.data_ptr()
        assert torch.equal(xa, xe) and torch.equal(xb, xe) and torch.equal(ya, ye)
