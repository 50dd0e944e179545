"""The notebooks where students use them: JupyterLab in a real (headless) Chromium.

One JupyterLab server serves copies of the five notebooks; each notebook is opened in the
browser and run with *Run > Run All Cells*, with ``HW2_QUICK=1 HW2_DATASET=synthetic``. Then
the saved notebook and the page are checked: every code cell ran without an error output,
progress bars are widgets, every plot is an image of nonzero size. A screenshot of each
notebook's end goes to ``build/browser/``, with the timings in ``build/browser/timings.json``.

The drawing pad of Part 4 is then used with real mouse drags: the kernel's image must hold ink
where the pointer went and none elsewhere; blur, predict, reset; the page reloaded with the
kernel running, the pad still draws; digits traced from the data set's test images are
predicted as their labels.

Skipped, with one line saying why, where there is no Chromium; a JupyterLab that does not
start is a failure. ``make test-browser`` runs only these tests (marker ``browser``).
"""
import base64
import json
import math
import re
import shutil
import time
from pathlib import Path

import numpy as np
import pytest

import browser_lab

ROOT = Path(__file__).resolve().parent.parent
NOTEBOOKS = sorted(p.name for p in ROOT.glob("Part*.ipynb"))
OUT = ROOT / "build" / "browser"
CHROMIUM = browser_lab.chromium_path()
#: The longest a notebook may take through the UI (quick settings; a loaded 2-core machine).
RUN_TIMEOUT = 900.0

pytestmark = [
    pytest.mark.browser, pytest.mark.slow,
    pytest.mark.skipif(CHROMIUM is None, reason="no Chromium (/usr/bin/chromium): install Debian's "
                       "chromium (.ci/system-packages.sh) to run the browser tests"),
]

TIMINGS = {}


# -- the server, the browser, the page helpers ------------------------------------------------------
@pytest.fixture(scope="module")
def lab(tmp_path_factory):
    root = tmp_path_factory.mktemp("lab-root")
    for name in NOTEBOOKS:
        shutil.copy(ROOT / name, root / name)
    (root / "tests").mkdir()
    (root / "tests" / "assets").symlink_to(ROOT / "tests" / "assets")  # Part 4 reads a manifest
    (root / "results").symlink_to(ROOT / "results")  # Part 5 shows the committed results
    env = dict(HW2_QUICK="1", HW2_DATASET="synthetic", PYTHONPATH=str(ROOT))
    server = browser_lab.JupyterLab(root, tmp_path_factory.mktemp("lab-state"), env=env)
    with server:
        yield server
    assert not server.processes(), f"left behind: {server.processes()}"
    OUT.mkdir(parents=True, exist_ok=True)
    (OUT / "timings.json").write_text(json.dumps(TIMINGS, indent=2))


@pytest.fixture(scope="module")
def browser(lab, tmp_path_factory):
    with browser_lab.open_browser(CHROMIUM, tmp_path_factory.mktemp("profile")) as (context, alive):
        yield context
    assert not alive(), f"browser processes left behind: {alive()}"


def open_notebook(context, lab, name):
    page = context.new_page()
    page.goto(lab.lab_url(name))
    page.wait_for_selector(".jp-Notebook .jp-Cell", timeout=60_000)
    accept_kernel_dialog(page)
    return page


def accept_kernel_dialog(page, timeout=120.0):
    """Wait for the notebook's kernel. On a slow machine JupyterLab may open the notebook before
    it has the list of kernels and then asks which one to start: the default (Python 3), as a
    student would answer."""
    deadline, settled = time.monotonic() + timeout, None
    while time.monotonic() < deadline:
        dialog = page.locator(".jp-Dialog:has-text('Select Kernel') button.jp-mod-accept")
        if dialog.count():
            dialog.first.click()
            settled = None
        elif page.query_selector(".jp-Notebook-ExecutionIndicator[data-status='idle']"):
            settled = settled or time.monotonic()
            if time.monotonic() - settled > 3:
                return
        time.sleep(0.5)
    pytest.fail("the notebook's kernel did not start")


def error_text(page):
    return page.eval_on_selector_all(
        ".jp-OutputArea-output[data-mime-type='application/vnd.jupyter.error'], "
        ".jp-RenderedText[data-mime-type='application/vnd.jupyter.error']",
        "els => els.map(e => e.textContent)")


def prompts(page):
    return page.eval_on_selector_all(".jp-CodeCell .jp-InputArea-prompt",
                                     "els => els.map(e => e.textContent.trim())")


def wait_until_run(page, timeout):
    """Wait until every code cell has an execution count; fail at the first error output."""
    deadline, idle_since, started = time.monotonic() + timeout, None, False
    retry_at = time.monotonic() + 60
    while True:
        errors = error_text(page)
        if errors:
            pytest.fail(f"error output: {errors[0][-3000:]}")
        marks = prompts(page)
        if marks and all(re.fullmatch(r"\[\d+\]:", m) for m in marks):
            return len(marks)
        started = started or any(m != "[ ]:" for m in marks)
        if not started and retry_at and time.monotonic() > retry_at:
            run_all_from_menu(page)  # the first click went nowhere (a busy page): once more
            retry_at = None
        idle = page.query_selector(".jp-Notebook-ExecutionIndicator[data-status='idle']")
        idle_since = (idle_since or time.monotonic()) if started and idle and "[*]:" not in marks else None
        if idle_since and time.monotonic() - idle_since > 30:
            pytest.fail(f"the kernel is idle but cells did not run: {marks}")
        if not started and time.monotonic() > deadline - timeout + 180:
            pytest.fail("Run All did not start a cell within 3 minutes")
        if time.monotonic() > deadline:
            pytest.fail(f"not finished after {timeout:.0f}s: {marks}")
        time.sleep(0.5)


def run_all_from_menu(page):
    page.locator(".jp-Notebook .jp-Cell").first.click()  # the notebook is the current widget
    page.keyboard.press("Escape")
    page.click(".lm-MenuBar-itemLabel:text-is('Run')")
    item = page.locator(".lm-Menu-item[data-command='runmenu:run-all']")
    assert "lm-mod-disabled" not in (item.get_attribute("class") or ""), "Run All is disabled"
    item.click()


def save(page, lab, name):
    """Save through the UI (Ctrl+S) and return the notebook as the server stored it."""
    page.keyboard.press("Escape")
    page.keyboard.press("Control+s")
    page.wait_for_selector(".lm-TabBar-tab.jp-mod-current.jp-mod-dirty", state="detached",
                           timeout=30_000)
    return lab.api("GET", f"/api/contents/{name}?content=1")["content"]


def run_code(page, code, timeout=120.0):
    """Add a cell at the end of the open notebook, type ``code`` into it, run it; its text output."""
    page.locator(".jp-Notebook .jp-Cell").last.click(position={"x": 5, "y": 5})
    page.keyboard.press("Escape")
    page.keyboard.press("b")
    page.keyboard.press("Enter")
    page.keyboard.insert_text(code)
    page.keyboard.press("Control+Enter")  # run it and stay: Shift+Enter would add a cell below
    cell = page.locator(".jp-Notebook .jp-CodeCell").last
    deadline = time.monotonic() + timeout
    while not re.fullmatch(r"\[\d+\]:", cell.locator(".jp-InputArea-prompt").text_content().strip()):
        if time.monotonic() > deadline:
            pytest.fail(f"code did not finish: {code}")
        time.sleep(0.2)
    errors = error_text(page)
    assert not errors, errors[0][-2000:]
    return cell.locator(".jp-OutputArea").text_content()


def kernel_value(page, expression):
    """The JSON value of a Python expression evaluated in the notebook's kernel."""
    text = run_code(page, f"import json as _j; print('@@' + _j.dumps({expression}) + '@@')")
    return json.loads(re.search(r"@@(.*)@@", text, re.S).group(1))


# -- all five notebooks through the UI --------------------------------------------------------------
def check_page(page, name, nb):
    """The checks of a notebook that ran: saved outputs, widgets and images on the page."""
    code = [c for c in nb["cells"] if c["cell_type"] == "code"]
    assert all(c["execution_count"] for c in code), "a code cell has no execution count"
    errors = [o for c in code for o in c["outputs"] if o["output_type"] == "error"]
    assert not errors, f"{name}: error outputs {errors}"
    body = page.inner_text(".jp-Notebook")
    assert "Error displaying widget" not in body
    for raw in ("FloatProgress(", "HBox(children=", "IntProgress("):
        assert raw not in body, f"{name}: a widget shown as its text repr ({raw})"
    # JupyterLab's widget renderer leaves its output element without a data-mime-type.
    views = page.query_selector_all(".jp-OutputArea-output:not([data-mime-type])")
    saved_views = sum("application/vnd.jupyter.widget-view+json" in o.get("data", {})
                      for c in code for o in c["outputs"])
    assert len(views) == saved_views, f"{name}: {saved_views} widget outputs saved, {len(views)} shown"
    for view in views:
        assert view.query_selector(".jupyter-widgets"), f"{name}: a widget output shows no widget"
    sizes = page.eval_on_selector_all(".jp-OutputArea-output img",
                                      "els => els.map(e => [e.naturalWidth, e.naturalHeight])")
    assert all(w > 0 and h > 0 for w, h in sizes), f"{name}: an empty image {sizes}"
    return dict(code_cells=len(code), widgets=len(views), images=len(sizes),
                progress_bars=len(page.query_selector_all(".widget-hprogress")))


@pytest.fixture(scope="module")
def part4(browser, lab):
    """Part 4 run through the UI (the pad tests below use its kernel and its pad)."""
    return run_notebook(browser, lab, "Part4_CNN.ipynb")


def run_notebook(browser, lab, name):
    page = open_notebook(browser, lab, name)
    start = time.monotonic()
    OUT.mkdir(parents=True, exist_ok=True)
    try:
        run_all_from_menu(page)
        cells = wait_until_run(page, RUN_TIMEOUT)
        seconds = time.monotonic() - start
        nb = save(page, lab, name)
        stats = check_page(page, name, nb)
    except BaseException:
        page.screenshot(path=str(OUT / f"{Path(name).stem}-failed.png"), full_page=True)
        raise
    page.locator(".jp-Notebook .jp-Cell").last.scroll_into_view_if_needed()
    page.screenshot(path=str(OUT / f"{Path(name).stem}.png"))
    plots = page.locator(".jp-OutputArea-output img")
    if plots.count():  # and the first figure, for a human to look at the plots
        plots.first.scroll_into_view_if_needed()
        page.screenshot(path=str(OUT / f"{Path(name).stem}-first-plot.png"))
    TIMINGS[name] = dict(stats, seconds=round(seconds, 1))
    print(f"{name}: {cells} code cells in {seconds:.1f}s through the UI, {stats}")
    return page


@pytest.mark.parametrize("name", [n for n in NOTEBOOKS if n != "Part4_CNN.ipynb"])
def test_notebook_runs_through_the_jupyterlab_ui(browser, lab, name):
    page = run_notebook(browser, lab, name)
    if name.startswith(("Part2", "Part3", "Part5")):
        assert TIMINGS[name]["images"] > 0, "plots expected"
        assert TIMINGS[name]["progress_bars"] > 0, "training progress bars expected"
    page.close()


def test_part4_runs_through_the_jupyterlab_ui_with_module_trees(part4):
    text = part4.inner_text(".jp-Notebook")
    assert "Sequential(" in text and "Conv2d(" in text  # print(net): the module trees
    assert "Total params" in text  # the torchinfo summaries
    assert "Units." not in text and "Total mult-adds (millions)" in text
    assert TIMINGS["Part4_CNN.ipynb"]["progress_bars"] > 0


# -- the drawing pad --------------------------------------------------------------------------------
def pad_canvas(page):
    canvas = page.locator("canvas.hw2-pad-canvas").last
    canvas.scroll_into_view_if_needed()
    return canvas


def canvas_pixels(page):
    """The browser canvas' red channel ``(H, W)`` (the pad paints grey on black)."""
    data = page.eval_on_selector_all("canvas.hw2-pad-canvas", """els => {
        const c = els[els.length - 1], ctx = c.getContext('2d');
        const d = ctx.getImageData(0, 0, c.width, c.height).data;
        const out = new Array(c.width * c.height);
        for (let i = 0; i < out.length; i++) out[i] = d[4 * i];
        return [c.height, c.width, out];
    }""")
    h, w, values = data
    return np.array(values, dtype=np.uint8).reshape(h, w)


def drag(page, canvas, points, release=True):
    """Press the mouse at the first canvas point, move through the others, release.

    The points must be on the visible canvas: a click on a button below the pad may have
    scrolled its top under JupyterLab's toolbar or off the page, where a drag would draw
    nothing. Then the canvas is scrolled to the middle of the page first."""
    to_page = canvas_to_page(canvas, points)
    if covered(page, to_page):
        canvas.evaluate("c => c.scrollIntoView({block: 'center', inline: 'center'})")
        to_page = canvas_to_page(canvas, points)
    assert not covered(page, to_page), f"the pad's canvas is hidden at {covered(page, to_page)}"
    page.mouse.move(*to_page[0])
    page.mouse.down()
    for point in to_page[1:]:
        page.mouse.move(*point, steps=8)
    if release:
        page.mouse.up()


def canvas_to_page(canvas, points):
    box = canvas.bounding_box()
    return [(box["x"] + x, box["y"] + y) for x, y in points]


def covered(page, points):
    """The page points where the pad's canvas is not the element on top."""
    return page.evaluate("""pts => pts.filter(([x, y]) => {
        const el = document.elementFromPoint(x, y);
        return !(el && el.classList.contains('hw2-pad-canvas'));
    })""", [list(p) for p in points])


def kernel_image(page):
    """The kernel's drawing as two masks: ink (> 0.5) and any ink (> 0)."""
    packed = kernel_value(page, "[__import__('base64').b64encode(__import__('numpy').packbits("
                                "pad.image > t)).decode() for t in (0.5, 0.0)] + list(pad.image.shape)")
    h, w = packed[2:]
    masks = [np.unpackbits(np.frombuffer(base64.b64decode(p), np.uint8))[:h * w].reshape(h, w)
             for p in packed[:2]]
    return masks[0].astype(bool), masks[1].astype(bool)


def polyline_distance(shape, points):
    """Distance of every pixel centre to a poly-line (plain geometry, the test's oracle)."""
    rows, cols = np.mgrid[0:shape[0], 0:shape[1]]
    px, py = cols + 0.5, rows + 0.5
    best = np.full(shape, np.inf)
    for (ax, ay), (bx, by) in zip(points[:-1], points[1:]):
        dx, dy = bx - ax, by - ay
        t = np.clip(((px - ax) * dx + (py - ay) * dy) / max(dx * dx + dy * dy, 1e-12), 0, 1)
        best = np.minimum(best, np.hypot(px - (ax + t * dx), py - (ay + t * dy)))
    return best


def click(page, label):
    page.locator(".jupyter-widgets button", has_text=label).last.click()


def shown_prediction(page, timeout=30.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        text = page.locator(".jupyter-widgets:has-text('prediction:')").last
        if text.count():
            found = re.search(r"prediction: (\S+) \(([\d.]+)%\)", text.inner_text())
            if found:
                return found.group(1), text.inner_text()
        time.sleep(0.2)
    pytest.fail("no prediction shown")


def wait_for(page, condition, what, timeout=30.0):
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            pytest.fail(f"timed out waiting for {what}")
        time.sleep(0.2)


STROKE = [(60.0, 70.0), (220.0, 70.0), (140.0, 230.0)]  # a '7': canvas pixels


def test_pad_model_recognises_digits_in_quick_mode(part4):
    acc = kernel_value(part4, "pad_fit.test_acc[-1]")
    TIMINGS["pad_model_test_accuracy"] = acc
    assert acc >= 90.0


def test_pad_paints_in_the_browser_and_the_kernel_gets_the_stroke(part4):
    page = part4
    run_code(page, "pad.auto.value = False; pad.reset()")
    canvas = pad_canvas(page)
    wait_for(page, lambda: canvas_pixels(page).max() == 0, "a black canvas")
    drag(page, canvas, STROKE, release=False)
    # Mid-stroke: the browser has painted the ink although nothing went to the kernel yet.
    painted = canvas_pixels(page)
    dist = polyline_distance(painted.shape, STROKE)
    assert (painted[dist < 5] > 200).all() and (painted[dist > 30] == 0).all()
    page.mouse.up()
    width = kernel_value(page, "pad.stroke_width")
    wait_for(page, lambda: kernel_value(page, "bool(pad.image.any())"), "the stroke in the kernel")
    ink, any_ink = kernel_image(page)
    dist = polyline_distance(ink.shape, STROKE)
    # Ink where the pointer went, none elsewhere (the pointer lands on whole pixels: 1.5 px slack).
    assert ink[dist <= width / 2 - 1.5].all()
    assert not any_ink[dist >= width / 2 + 1.5].any()
    # The kernel's drawing comes back to the canvas.
    wait_for(page, lambda: (canvas_pixels(page)[dist <= width / 2 - 1.5] > 200).all(), "repaint")


def test_pad_blur_predict_and_reset(part4):
    page = part4
    before = kernel_value(page, "[float(pad.image.sum()), int((pad.image > 0).sum())]")
    assert before[0] > 0
    click(page, "blur")
    wait_for(page, lambda: kernel_value(page, "int((pad.image > 0).sum())") > before[1], "the blur")
    after = kernel_value(page, "[float(pad.image.sum()), float(pad.image.max())]")
    assert after[0] == pytest.approx(before[0], rel=0.05)  # spread, not removed
    click(page, "predict")
    label, text = shown_prediction(page)
    probs = kernel_value(page, "pad.last_prediction.probs.tolist()")
    assert label == str(int(np.argmax(probs))) and sum(probs) == pytest.approx(1.0)
    for k in range(10):
        assert re.search(rf"\b{k}\s+[\d.]+%", text), f"class {k} has no probability shown"
    TIMINGS["pad_seven_after_blur"] = label
    click(page, "reset")
    wait_for(page, lambda: canvas_pixels(page).max() == 0, "a cleared canvas")
    assert kernel_value(page, "[bool(pad.image.any()), pad.last_prediction is None]") == [False, True]
    wait_for(page, lambda: page.locator(".jupyter-widgets", has_text="Draw a digit, then press "
                                        "predict").count() > 0, "the cleared prediction")


def trace(image, side):
    """Strokes that trace an image: one horizontal stroke along each run of bright pixels of
    each row, through the centres of the canvas cells that stand for those pixels."""
    h, w = image.shape
    cell = side / max(h, w)
    strokes = []
    for r in range(h):
        bright = np.flatnonzero(image[r] > 0.45)
        if not len(bright):
            continue
        runs = np.split(bright, np.flatnonzero(np.diff(bright) > 1) + 1)
        for run in runs:
            y = (r + 0.5) * cell
            strokes.append([((run[0] + 0.5) * cell, y), ((run[-1] + 0.5) * cell, y)])
    return strokes


def test_digits_traced_from_test_images_are_predicted_as_their_labels(part4):
    page = part4
    samples = kernel_value(page, """(lambda xs, ys: [
        [(xs[i][0] - xs[i][0].min()).div(xs[i][0].max() - xs[i][0].min()).tolist(), k]
        for k in range(10) for i in [next(j for j in range(len(ys)) if int(ys[j]) == k)]])(
        [ds_digits_test[j][0] for j in range(len(ds_digits_test))],
        [ds_digits_test[j][1] for j in range(len(ds_digits_test))])""")
    run_code(page, "pad.auto.value = True; pad.reset()")
    canvas = pad_canvas(page)
    side = canvas_pixels(page).shape[0]
    results = {}
    for image, label in samples:
        click(page, "reset")
        wait_for(page, lambda: canvas_pixels(page).max() == 0, "a cleared canvas")
        strokes = trace(np.array(image), side)
        for stroke in strokes:
            drag(page, canvas, stroke)
        wait_for(page, lambda: kernel_value(page, "pad.last_prediction is not None"), "a prediction")
        click(page, "predict")
        results[label] = int(shown_prediction(page)[0])
    TIMINGS["pad_traced_digits"] = {str(k): v for k, v in results.items()}
    print("traced digits -> predicted:", results)
    wrong = {k: v for k, v in results.items() if k != v}
    assert not wrong, f"traced digits predicted wrong (label: prediction): {wrong}"


def test_pad_works_after_a_page_reload(part4, lab):
    page = part4
    run_code(page, "pad.auto.value = False; pad.reset()")
    canvas = pad_canvas(page)
    drag(page, canvas, [(140.0, 40.0), (146.0, 240.0)])  # a '1', left in the kernel
    wait_for(page, lambda: kernel_value(page, "bool(pad.image.any())"), "the stroke in the kernel")
    save(page, lab, "Part4_CNN.ipynb")
    page.reload()
    page.wait_for_selector(".jp-Notebook .jp-Cell", timeout=60_000)
    accept_kernel_dialog(page)
    page.wait_for_selector("canvas.hw2-pad-canvas", timeout=60_000)
    # The reloaded view shows the kernel's drawing ...
    dist = polyline_distance((280, 280), [(140.0, 40.0), (146.0, 240.0)])
    wait_for(page, lambda: (canvas_pixels(page)[dist < 8] > 200).all(), "the drawing after reload")
    assert (canvas_pixels(page)[dist > 40] == 0).all()
    # ... and the pad keeps working: reset, draw, blur, predict.
    click(page, "reset")
    wait_for(page, lambda: canvas_pixels(page).max() == 0, "a cleared canvas")
    canvas = pad_canvas(page)
    drag(page, canvas, STROKE)
    wait_for(page, lambda: kernel_value(page, "bool(pad.image.any())"), "the stroke after reload")
    ink, any_ink = kernel_image(page)
    width = kernel_value(page, "pad.stroke_width")
    dist = polyline_distance(ink.shape, STROKE)
    assert ink[dist <= width / 2 - 1.5].all() and not any_ink[dist >= width / 2 + 1.5].any()
    painted = canvas_pixels(page)
    assert (painted[dist <= width / 2 - 1.5] > 200).all()
    click(page, "blur")
    click(page, "predict")
    label, _ = shown_prediction(page)
    TIMINGS["pad_seven_after_reload"] = label
    # Displayed again in a new cell, the same pad (same drawing) works too.
    run_code(page, "pad")
    assert page.locator("canvas.hw2-pad-canvas").count() == 2
    wait_for(page, lambda: canvas_pixels(page).max() > 200, "the re-displayed pad's drawing")
    OUT.mkdir(parents=True, exist_ok=True)
    page.locator("canvas.hw2-pad-canvas").first.scroll_into_view_if_needed()
    page.screenshot(path=str(OUT / "pad_after_reload.png"))
    assert math.isfinite(kernel_value(page, "float(pad.last_prediction.probs.max())"))
