"""The image processing behind the drawing pad: plain numpy/torch, tested without a browser.

- :func:`new_canvas`, :func:`draw_stroke`: white-on-black strokes on a float canvas ``(H, W)``;
- :func:`blur`: a Gaussian blur (zero outside the canvas);
- :func:`resize`: anti-aliased resampling to any size;
- :func:`preprocess`: normalise a drawing to the model's input size the way the training digits
  were made: crop the ink, scale its longer side to a box and place it in the frame, intensities
  in [0, 1]. Two conventions, chosen by the frame size:

  * MNIST (28x28): the digit's longer side is 20 pixels and its centre of mass is put on the
    frame's centre;
  * scikit-learn's 8x8 digits (UCI optdigits, small frames): the digit's bounding box was scaled
    to fill a 32x32 bitmap (every one of the 1,797 images has ink in its first and last row)
    and centred *as a box*; the ink pixels of each 4x4 block of that binary bitmap were then
    counted. Centring such a full-frame digit by its centre of mass instead pushes a row or
    column off the frame (a 6 whose loop is low loses its top row) - the mismatch that made the
    pad misread digits;
- :func:`predict`: run a model on a preprocessed image, returning the class and probabilities;
- :func:`png_bytes`: an image in [0, 1] as 8-bit grey PNG, the form the widget shows.

The widget itself is :mod:`cs236781.drawing_pad`.
"""
import io
import math
from typing import NamedTuple, Optional, Sequence, Tuple

import numpy as np
import torch
import torch.nn.functional as F

from hw2.validation import (check_choice, check_instance, check_int, check_int_list,
                            check_interval, check_optional, check_real, is_int)

#: Share of the frame taken by the digit's longer side in MNIST (20 pixels of 28).
MNIST_FILL = 20 / 28
#: Below this side length the frame is filled completely and the digit centred as a box (like
#: scikit-learn's 8x8 digits); from it on, MNIST's 20/28 box and centre-of-mass placement.
SMALL_FRAME = 16
#: How :func:`preprocess` may place the digit: by its centre of mass or its bounding box.
CENTRINGS = ("mass", "box")
#: What a ``size`` argument may be (named when one is refused).
SIZE_FORMS = "a positive integer S or an (H, W) pair of positive integers"


class Prediction(NamedTuple):
    """A model's answer for one drawing.

    label: index of the most probable class.
    probs: class probabilities, ``(num_classes,)``, summing to 1.
    name: the class name (``str(label)`` when no names were given).
    """

    label: int
    probs: np.ndarray
    name: str


def new_canvas(size=280) -> np.ndarray:
    """An empty (black) canvas.

    :param size: ``S`` for a square canvas or ``(H, W)``.
    :return: float32 zeros, ``(H, W)``.
    """
    h, w = hw_size("size", size)
    return np.zeros((h, w), dtype=np.float32)


def draw_stroke(canvas: np.ndarray, points: Sequence[Tuple[float, float]], width: float) -> np.ndarray:
    """Draw a poly-line with round ends and anti-aliased edges onto ``canvas``, in place.

    Coordinates are those of an HTML canvas: ``(x, y)`` = (column, row) in pixels, with pixel
    ``(i, j)`` covering ``[j, j+1) x [i, i+1)``. Ink is 1.0; a pixel keeps the brighter of its
    old value and the stroke's coverage.

    :param canvas: float array ``(H, W)``, modified in place.
    :param points: One or more ``(x, y)`` points; a single point draws a dot.
    :param width: Stroke width in pixels (> 0).
    :return: ``canvas``.
    """
    check_instance("canvas", canvas, np.ndarray, "a floating-point numpy array (H, W)")
    if not np.issubdtype(canvas.dtype, np.floating):
        raise TypeError(f"canvas must be a floating-point numpy array (H, W), got dtype "
                        f"{canvas.dtype}")
    _check_image("canvas", canvas)
    pts = np.asarray(points, dtype=np.float64)
    if pts.ndim != 2 or pts.shape[1] != 2 or len(pts) == 0:
        raise ValueError(f"points must be a non-empty sequence of (x, y) pairs, got shape {pts.shape}")
    width = check_real("width", width, 0.0, strict=True)
    radius = width / 2.0
    segments = zip(pts[:-1], pts[1:]) if len(pts) > 1 else [(pts[0], pts[0])]
    for a, b in segments:
        _draw_segment(canvas, a, b, radius)
    return canvas


def gaussian_kernel(sigma: float, truncate: float = 4.0) -> np.ndarray:
    """A normalised 1-D Gaussian of standard deviation ``sigma``, radius ``int(truncate*sigma+0.5)``."""
    radius = int(truncate * sigma + 0.5)
    x = np.arange(-radius, radius + 1, dtype=np.float64)
    k = np.exp(-0.5 * (x / sigma) ** 2)
    return k / k.sum()


def blur(image: np.ndarray, sigma: float = 1.0, truncate: float = 4.0) -> np.ndarray:
    """Gaussian blur with zeros outside the image.

    The total intensity is preserved except for what spreads past the border.

    :param image: ``(H, W)`` array.
    :param sigma: Standard deviation in pixels (>= 0; 0 returns a copy).
    :param truncate: The kernel reaches ``truncate * sigma`` pixels.
    :return: A new float64 array ``(H, W)``.
    """
    img = _check_image("image", image).astype(np.float64)
    sigma = check_real("sigma", sigma, 0.0)
    if sigma == 0:
        return img
    k = gaussian_kernel(sigma, truncate)
    return _convolve_axis(_convolve_axis(img, k, 0), k, 1)


def resize(image: np.ndarray, size) -> np.ndarray:
    """Resample an image to ``size``.

    Shrinking averages the source pixels that fall into each output pixel (exact block means for
    integer factors); enlarging interpolates bilinearly.

    :param image: ``(H, W)`` array.
    :param size: ``S`` or ``(h, w)``.
    :return: float64 ``(h, w)``.
    """
    img = _check_image("image", image)
    h, w = hw_size("size", size)
    t = torch.as_tensor(np.asarray(img, dtype=np.float64))[None, None]
    if h <= img.shape[0] and w <= img.shape[1]:
        out = F.adaptive_avg_pool2d(t, (h, w))
    else:
        out = F.interpolate(t, size=(h, w), mode="bilinear", align_corners=False, antialias=True)
    return out[0, 0].numpy()


def center_of_mass(image: np.ndarray) -> Tuple[float, float]:
    """Intensity-weighted mean ``(row, column)`` of the pixel indices.

    :raises ValueError: If the image has no positive mass.
    """
    img = _check_image("image", image).astype(np.float64)
    total = img.sum()
    if not total > 0:
        raise ValueError("image is empty: the centre of mass is undefined")
    rows = np.arange(img.shape[0]) @ img.sum(axis=1) / total
    cols = np.arange(img.shape[1]) @ img.sum(axis=0) / total
    return float(rows), float(cols)


def default_fill(size) -> float:
    """How much of a frame of ``size`` the digit's longer side takes: 20/28 like MNIST, or all of
    it for small frames (side < 16, e.g. the 8x8 digits)."""
    h, w = hw_size("size", size)
    return MNIST_FILL if min(h, w) >= SMALL_FRAME else 1.0


def default_centring(size) -> str:
    """How a digit is placed in a frame of ``size``: ``"mass"`` (centre of mass on the frame's
    centre, like MNIST) or, for small frames (side < 16, e.g. the 8x8 digits), ``"box"``
    (bounding box centred, like scikit-learn's digits)."""
    h, w = hw_size("size", size)
    return "mass" if min(h, w) >= SMALL_FRAME else "box"


def default_bitmap_factor(size) -> int:
    """For small frames (side < 16), 4: the 8x8 digits count the ink of 4x4 blocks of a binary
    32x32 bitmap. Otherwise 0: MNIST's images are anti-aliased grey levels, not block counts."""
    h, w = hw_size("size", size)
    return 0 if min(h, w) >= SMALL_FRAME else 4


def preprocess(canvas: np.ndarray, size=(28, 28), fill: Optional[float] = None,
               ink_threshold: float = 0.1, centring: Optional[str] = None,
               bitmap_factor: Optional[int] = None) -> np.ndarray:
    """Turn a drawing into a model input the way the training digits were made.

    1. crop to the ink (pixels above ``ink_threshold`` times the maximum);
    2. pad the crop to a centred square and resample it (area averages) to ``fill * min(h, w)``
       pixels; with ``bitmap_factor`` ``f > 0`` first to ``f`` times that side, made binary (ink
       where more than half covered), then each ``f x f`` block averaged;
    3. paste it into the ``(h, w)`` frame: with ``centring="mass"`` so that its centre of mass
       lands on the frame's centre ``((h-1)/2, (w-1)/2)``, rounded to whole pixels (MNIST); with
       ``"box"`` so that the square, and so the ink's bounding box, is centred (scikit-learn's
       digits: a digit taller than wide fills every row, its columns centred);
    4. scale intensities to [0, 1] (maximum 1).

    An empty canvas gives an all-zero image.

    :param canvas: ``(H, W)`` drawing, ink > 0 on a 0 background.
    :param size: Output ``(h, w)`` (or ``S``): the model's image size.
    :param fill: Share of the frame for the digit's longer side; default :func:`default_fill`.
    :param ink_threshold: Relative intensity counted as ink when cropping, in (0, 1).
    :param centring: ``"mass"`` or ``"box"``; default :func:`default_centring`.
    :param bitmap_factor: Integer >= 0; default :func:`default_bitmap_factor`.
    :return: float32 ``(h, w)`` in [0, 1].
    """
    img = _check_image("canvas", canvas).astype(np.float64)
    h, w = hw_size("size", size)
    fill = check_optional(check_interval, "fill", fill, 0, 1, low_open=True)
    fill = default_fill((h, w)) if fill is None else fill
    centring = check_optional(check_choice, "centring", centring, CENTRINGS)
    centring = default_centring((h, w)) if centring is None else centring
    factor = check_optional(check_int, "bitmap_factor", bitmap_factor, 0)
    factor = default_bitmap_factor((h, w)) if factor is None else factor
    ink_threshold = check_interval("ink_threshold", ink_threshold, 0, 1, low_open=True,
                                   high_open=True)
    if (img < 0).any():
        raise ValueError("canvas must be non-negative (ink > 0 on a 0 background)")
    frame = np.zeros((h, w), dtype=np.float64)
    if not img.max() > 0:
        return frame.astype(np.float32)
    side = max(1, round(fill * min(h, w)))
    square = _square_crop(img, ink_threshold)
    if factor:
        square = (resize(square, side * factor) > 0.5 * square.max()).astype(np.float64)
    digit = resize(square, side)
    digit = np.clip(digit, 0.0, None)
    _paste_centred(frame, digit, by_mass=centring == "mass")
    peak = frame.max()
    if peak > 0:
        frame /= peak
    return np.clip(frame, 0.0, 1.0).astype(np.float32)


def to_model_input(image: np.ndarray, in_size, device=None, dtype=torch.float32) -> torch.Tensor:
    """A preprocessed image as a batch of one for a model with input ``in_size``.

    :param image: ``(H, W)`` with ``(H, W)`` equal to the last two entries of ``in_size``.
    :param in_size: ``(C, H, W)``; the image is repeated over the ``C`` channels.
    :return: ``(1, C, H, W)`` tensor.
    """
    c, h, w = chw_size(in_size)
    img = _check_image("image", image)
    if img.shape != (h, w):
        raise ValueError(f"image must have the model's spatial size {(h, w)}, got {img.shape}")
    x = torch.as_tensor(np.ascontiguousarray(img), dtype=dtype, device=device)
    return x.expand(c, h, w).reshape(1, c, h, w).contiguous()


def predict(model: torch.nn.Module, image: np.ndarray, in_size=None,
            classes: Optional[Sequence[str]] = None) -> Prediction:
    """Classify one preprocessed image.

    Uses ``model.predict_proba`` when the model has it (hw2 classifiers), else a softmax over
    the model's output scores. The model runs in eval mode without gradients; its training mode
    is restored afterwards.

    :param model: Maps ``(1, C, H, W)`` to class scores ``(1, K)``, K >= 2.
    :param image: ``(H, W)`` in [0, 1], e.g. from :func:`preprocess`.
    :param in_size: ``(C, H, W)``; default ``(1, H, W)``.
    :param classes: ``K`` class names.
    :return: A :class:`Prediction`.
    """
    check_instance("model", model, torch.nn.Module, "a torch.nn.Module")
    img = _check_image("image", image)
    in_size = (1, *img.shape) if in_size is None else in_size
    param = next(iter(model.parameters()), None)
    device = param.device if param is not None else None
    dtype = param.dtype if param is not None and param.is_floating_point() else torch.float32
    x = to_model_input(img, in_size, device=device, dtype=dtype)
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            if hasattr(model, "predict_proba"):
                probs = model.predict_proba(x)
            else:
                scores = model(x)
                _check_scores(scores)
                probs = torch.softmax(scores.to(torch.float64), dim=1)
    finally:
        model.train(was_training)
    _check_scores(probs)
    p = probs[0].detach().to("cpu", torch.float64).numpy()
    label = int(np.argmax(p))
    if classes is not None and len(classes) != len(p):
        raise ValueError(f"classes must name all {len(p)} model outputs, got {len(classes)} names")
    return Prediction(label, p, str(classes[label]) if classes is not None else str(label))


# -- helpers -------------------------------------------------------------------------------------
def _draw_segment(canvas: np.ndarray, a: np.ndarray, b: np.ndarray, radius: float) -> None:
    h, w = canvas.shape
    reach = radius + 1.0
    r0 = max(0, int(math.floor(min(a[1], b[1]) - reach)))
    r1 = min(h, int(math.ceil(max(a[1], b[1]) + reach)) + 1)
    c0 = max(0, int(math.floor(min(a[0], b[0]) - reach)))
    c1 = min(w, int(math.ceil(max(a[0], b[0]) + reach)) + 1)
    if r0 >= r1 or c0 >= c1:
        return
    ys, xs = np.mgrid[r0:r1, c0:c1]
    px, py = xs + 0.5, ys + 0.5
    d = b - a
    length2 = float(d @ d)
    if length2 > 0:
        t = np.clip(((px - a[0]) * d[0] + (py - a[1]) * d[1]) / length2, 0.0, 1.0)
    else:
        t = np.zeros_like(px)
    dist = np.hypot(px - (a[0] + t * d[0]), py - (a[1] + t * d[1]))
    coverage = np.clip(radius + 0.5 - dist, 0.0, 1.0)
    region = canvas[r0:r1, c0:c1]
    np.maximum(region, coverage.astype(canvas.dtype), out=region)


def _convolve_axis(img: np.ndarray, kernel: np.ndarray, axis: int) -> np.ndarray:
    radius = len(kernel) // 2
    n = img.shape[axis]
    pad = [(0, 0), (0, 0)]
    pad[axis] = (radius, radius)
    padded = np.pad(img, pad)
    out = np.zeros_like(img)
    for k, weight in enumerate(kernel):
        window = padded[k:k + n, :] if axis == 0 else padded[:, k:k + n]
        out += weight * window
    return out


def _square_crop(img: np.ndarray, ink_threshold: float) -> np.ndarray:
    """The ink's bounding box, padded with zeros to a centred square."""
    ink = img > ink_threshold * img.max()
    rows, cols = np.flatnonzero(ink.any(axis=1)), np.flatnonzero(ink.any(axis=0))
    crop = img[rows[0]:rows[-1] + 1, cols[0]:cols[-1] + 1]
    side = max(crop.shape)
    square = np.zeros((side, side), dtype=np.float64)
    top, left = (side - crop.shape[0]) // 2, (side - crop.shape[1]) // 2
    square[top:top + crop.shape[0], left:left + crop.shape[1]] = crop
    return square


def _paste_centred(frame: np.ndarray, digit: np.ndarray, by_mass: bool) -> None:
    """Add ``digit`` into ``frame`` so that its centre of mass (``by_mass``) or its own centre is
    on the frame's centre (clipped)."""
    if by_mass:
        cy, cx = center_of_mass(digit)
    else:
        cy, cx = (digit.shape[0] - 1) / 2, (digit.shape[1] - 1) / 2
    top = int(round((frame.shape[0] - 1) / 2 - cy))
    left = int(round((frame.shape[1] - 1) / 2 - cx))
    fr0, fc0 = max(0, top), max(0, left)
    fr1 = min(frame.shape[0], top + digit.shape[0])
    fc1 = min(frame.shape[1], left + digit.shape[1])
    if fr0 < fr1 and fc0 < fc1:
        frame[fr0:fr1, fc0:fc1] += digit[fr0 - top:fr1 - top, fc0 - left:fc1 - left]


def _check_image(name: str, image) -> np.ndarray:
    """``image`` (a numpy array, or a tensor as one) if it is 2-D, non-empty and finite."""
    if isinstance(image, torch.Tensor):
        image = image.detach().cpu().numpy()
    check_instance(name, image, np.ndarray, "a numpy array (H, W)")
    if image.ndim != 2 or 0 in image.shape:
        raise ValueError(f"{name} must be a non-empty 2-D array (H, W), got shape {image.shape}")
    if not np.isfinite(image).all():
        raise ValueError(f"{name} contains NaN or infinite values")
    return image


def _check_scores(scores) -> None:
    if not isinstance(scores, torch.Tensor) or scores.ndim != 2 or scores.shape[0] != 1 \
            or scores.shape[1] < 2:
        shape = tuple(scores.shape) if isinstance(scores, torch.Tensor) else type(scores).__name__
        raise ValueError(f"model must return class scores of shape (1, K) with K >= 2 for one "
                         f"image, got {shape}")


def hw_size(name: str, size) -> Tuple[int, int]:
    """``size``, ``S`` or ``(H, W)`` (positive integers), as ``(H, W)``.

    :raises TypeError: It is neither an integer nor a sequence of integers.
    :raises ValueError: It is not positive, or not a pair.
    """
    if is_int(size):
        side = check_int(name, size, 1, expected=SIZE_FORMS)
        return side, side
    h, w = check_int_list(name, size, lengths=(2,), expected=SIZE_FORMS)
    return h, w


def chw_size(in_size) -> Tuple[int, int, int]:
    """A model input size ``(C, H, W)`` or ``(H, W)`` (one channel) as ``(C, H, W)``.

    :raises TypeError: It is not a sequence of integers.
    :raises ValueError: It has not 2 or 3 entries, or one is not positive.
    """
    dims = check_int_list("in_size", in_size, lengths=(2, 3),
                          expected="(C, H, W) or (H, W) with positive integer entries")
    return tuple(dims) if len(dims) == 3 else (1, *dims)


def to_uint8(image: np.ndarray) -> np.ndarray:
    """Intensities in [0, 1] (clipped) as 8-bit grey levels, rounded."""
    return (np.clip(image, 0.0, 1.0) * 255.0 + 0.5).astype(np.uint8)


def png_bytes(image: np.ndarray, scale: int = 1) -> bytes:
    """An ``(H, W)`` image in [0, 1] as a grey PNG, each pixel enlarged to ``scale x scale``."""
    from PIL import Image

    gray = to_uint8(image)
    if scale > 1:
        gray = np.kron(gray, np.ones((scale, scale), dtype=np.uint8))
    buffer = io.BytesIO()
    Image.fromarray(np.ascontiguousarray(gray)).save(buffer, format="PNG")
    return buffer.getvalue()
