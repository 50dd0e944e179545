"""A drawing pad for hand-drawn digits: draw with the mouse in a notebook, the model guesses.

The pad is a small anywidget (:class:`PadCanvas`, front end in ``pad_canvas.js``) inside an
ipywidgets layout with reset / blur / predict buttons, a preview of the model's input and the
class probabilities. Ink is painted by the browser as the pointer moves; the kernel receives
each stroke when it ends and keeps the drawing (:attr:`DrawingPad.image`, the source of truth),
which it sends back as a PNG. Because the drawing is widget state, a reloaded page (or the pad
displayed again) shows it and keeps working.

The image processing (strokes, blur, preprocessing like the training digits, prediction) is plain code in
:mod:`cs236781.pad_image`; its names are re-exported here. A notebook needs two lines::

    from cs236781.drawing_pad import pad_for
    pad_for(model, in_size=(1, 28, 28))
"""
from pathlib import Path
from typing import Optional, Sequence

import anywidget
import numpy as np
import torch
import traitlets

from cs236781.pad_image import (CENTRINGS, MNIST_FILL, SMALL_FRAME, Prediction, blur,  # noqa: F401
                                center_of_mass, chw_size, default_bitmap_factor, default_centring,
                                default_fill, draw_stroke, gaussian_kernel, hw_size, new_canvas,
                                png_bytes, predict, preprocess, resize, to_model_input)
from hw2.validation import (check_bool, check_choice, check_instance, check_int, check_interval,
                            check_optional, check_real)

#: Side of the preview of the model's input, in screen pixels.
PREVIEW_SIDE = 112
#: What a front end without widgets (nbconvert HTML, a terminal) shows instead of the pad.
NO_WIDGETS = ("the drawing pad is a Jupyter widget: open the notebook in JupyterLab or Jupyter "
              "Notebook with a running kernel to draw")


class PadCanvas(anywidget.AnyWidget):
    """The canvas of the pad: the browser paints the ink and sends each finished stroke.

    size: side of the square canvas in pixels. stroke_width: pen width in pixels.
    image: the kernel's drawing as a grey PNG (empty: a black canvas).
    """

    _esm = Path(__file__).with_name("pad_canvas.js")
    size = traitlets.Int(280).tag(sync=True)
    stroke_width = traitlets.Float(25.0).tag(sync=True)
    image = traitlets.Bytes(b"").tag(sync=True)

    def __repr__(self) -> str:
        return f"PadCanvas(size={self.size}, stroke_width={self.stroke_width:g})"


class DrawingPad:
    """A notebook widget: draw with the mouse, then reset / blur / predict.

    The drawing lives in :attr:`image`, ``(canvas_size, canvas_size)`` floats in [0, 1]; the
    browser canvas mirrors it. Displaying the pad (last expression of a cell) shows
    :attr:`widget`.

    :param model: The classifier, see :func:`cs236781.pad_image.predict`.
    :param in_size: Model input ``(C, H, W)`` (or ``(H, W)``).
    :param classes: Class names (default: the label numbers).
    :param canvas_size: Side of the square drawing area in screen pixels.
    :param stroke_width: Pen width in canvas pixels, > 0 (default: scaled to the frame size).
    :param blur_sigma: Blur strength in canvas pixels, > 0 (default: half an output pixel).
    :param fill: See :func:`cs236781.pad_image.preprocess`.
    :param centring: ``"mass"`` or ``"box"``, see :func:`cs236781.pad_image.preprocess`
        (default: by the model's frame size).
    :param predict_on_release: Also predict whenever a stroke ends.

    Every argument is checked here, not when the first stroke arrives: an error raised in a
    widget's callback goes to the widget's log, where nobody sees it.
    """

    def __init__(self, model: torch.nn.Module, in_size, classes: Optional[Sequence[str]] = None,
                 canvas_size: int = 280, stroke_width: Optional[float] = None,
                 blur_sigma: Optional[float] = None, fill: Optional[float] = None,
                 centring: Optional[str] = None, predict_on_release: bool = True):
        self.model = check_instance("model", model, torch.nn.Module, "a torch.nn.Module")
        self.in_size = chw_size(in_size)
        self.classes = None if classes is None else [str(c) for c in classes]
        self.canvas_size = check_int("canvas_size", canvas_size, 1)
        stroke_width = check_optional(check_real, "stroke_width", stroke_width, 0.0, strict=True)
        blur_sigma = check_optional(check_real, "blur_sigma", blur_sigma, 0.0, strict=True)
        self.fill = check_optional(check_interval, "fill", fill, 0, 1, low_open=True)
        self.centring = check_optional(check_choice, "centring", centring, CENTRINGS)
        predict_on_release = check_bool("predict_on_release", predict_on_release)
        frame = min(self.in_size[1:])
        small = frame < SMALL_FRAME
        self.stroke_width = stroke_width if stroke_width is not None \
            else self.canvas_size * (0.15 if small else 0.09)
        self.blur_sigma = blur_sigma if blur_sigma is not None else 0.5 * self.canvas_size / frame
        self.image = new_canvas(self.canvas_size)
        self.last_prediction: Optional[Prediction] = None
        self._build_widgets(predict_on_release)
        self.reset()

    def __repr__(self) -> str:
        return (f"DrawingPad(model={type(self.model).__name__}, in_size={self.in_size}, "
                f"canvas_size={self.canvas_size}, stroke_width={self.stroke_width:g})")

    def _repr_mimebundle_(self, **kwargs):
        bundle = self.widget._repr_mimebundle_(**kwargs)
        bundle["text/plain"] = f"{self!r}: {NO_WIDGETS}."
        return bundle

    # -- actions -------------------------------------------------------------------------------
    def add_stroke(self, points) -> None:
        """Add one finished stroke (what the browser sends when the pointer is released).

        :param points: ``(x, y)`` canvas positions along the stroke, one or more.
        """
        draw_stroke(self.image, points, self.stroke_width)
        self._show_drawing()
        if self.auto.value:
            self.predict()

    def reset(self) -> None:
        """Clear the drawing, the preview and the prediction."""
        self.image[...] = 0.0
        self.last_prediction = None
        self._show_drawing()
        self._show_preview(np.zeros(self.in_size[1:], dtype=np.float32))
        self.result.value = "<i>Draw a digit, then press predict.</i>"

    def blur(self) -> None:
        """Blur the drawing (so thin strokes look more like the training images)."""
        self.image[...] = np.clip(blur(self.image, self.blur_sigma), 0.0, 1.0)
        self._show_drawing()
        self._show_preview(self.model_image())

    def model_image(self) -> np.ndarray:
        """The drawing preprocessed to the model's input size, ``(H, W)`` in [0, 1]."""
        return preprocess(self.image, self.in_size[1:], fill=self.fill, centring=self.centring)

    def predict(self) -> Prediction:
        """Preprocess the drawing, classify it and show the class and probabilities."""
        small = self.model_image()
        self._show_preview(small)
        self.last_prediction = predict(self.model, small, self.in_size, self.classes)
        self.result.value = _probability_html(self.last_prediction, self.classes)
        return self.last_prediction

    # -- widgets ---------------------------------------------------------------------------------
    def _on_message(self, _widget, content, _buffers) -> None:
        if isinstance(content, dict) and content.get("type") == "stroke":
            self.add_stroke(content.get("points"))

    def _build_widgets(self, predict_on_release: bool) -> None:
        import ipywidgets as widgets

        side = self.canvas_size
        self.canvas = PadCanvas(size=side, stroke_width=self.stroke_width,
                                layout=widgets.Layout(width=f"{side + 2}px", height=f"{side + 2}px",
                                                      border="1px solid #888"))
        self.canvas.on_msg(self._on_message)
        self.buttons = {}
        for name, action in (("reset", self.reset), ("blur", self.blur), ("predict", self.predict)):
            button = widgets.Button(description=name, layout=widgets.Layout(width="90px"))
            button.on_click(lambda _, act=action: act())
            self.buttons[name] = button
        self.auto = widgets.Checkbox(value=predict_on_release, description="predict on release",
                                     indent=False)
        self.preview = widgets.Image(format="png", layout=widgets.Layout(
            width=f"{PREVIEW_SIDE}px", height=f"{PREVIEW_SIDE}px", border="1px solid #888"))
        self.result = widgets.HTML()
        h, w = self.in_size[1:]
        side_panel = widgets.VBox([widgets.HTML(f"<b>model input ({h}x{w})</b>"), self.preview,
                                   self.result])
        self.widget = widgets.VBox([
            widgets.HBox([self.canvas, side_panel]),
            widgets.HBox(list(self.buttons.values()) + [self.auto]),
        ])

    def _show_drawing(self) -> None:
        self.canvas.image = png_bytes(self.image) if self.image.any() else b""

    def _show_preview(self, small: np.ndarray) -> None:
        self.preview.value = png_bytes(small, scale=max(1, PREVIEW_SIDE // max(small.shape)))


def pad_for(model: torch.nn.Module, in_size, classes: Optional[Sequence[str]] = None,
            **kwargs) -> DrawingPad:
    """A :class:`DrawingPad` for ``model``; show it by making it a cell's last expression.

    :param model: Classifier of ``(1, C, H, W)`` images.
    :param in_size: ``(C, H, W)`` of the model's input, e.g. ``dataset_info().in_size``.
    :param classes: Class names, e.g. ``dataset_info().classes``.
    :param kwargs: Passed to :class:`DrawingPad`.
    """
    return DrawingPad(model, in_size, classes=classes, **kwargs)


def _probability_html(pred: Prediction, classes: Optional[Sequence[str]]) -> str:
    rows = []
    for k, p in enumerate(pred.probs):
        name = classes[k] if classes is not None else str(k)
        colour = "#2a7ae2" if k == pred.label else "#9bb"
        rows.append(
            f"<tr><td style='text-align:right;padding-right:6px'>{_escape(name)}</td>"
            f"<td style='width:120px'><div style='background:{colour};height:10px;"
            f"width:{100 * p:.1f}%'></div></td><td style='padding-left:6px'>{100 * p:.1f}%</td></tr>")
    return (f"<div><b>prediction: {_escape(pred.name)}</b> ({100 * pred.probs[pred.label]:.1f}%)</div>"
            f"<table style='font-size:90%'>{''.join(rows)}</table>")


def _escape(text: str) -> str:
    return str(text).replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
