// The drawing pad's canvas (an anywidget front-end module).
//
// Ink is painted here, in the browser, as the pointer moves; when a stroke ends its points go
// to the kernel in one message {type: "stroke", points: [[x, y], ...]} (canvas pixels).
// The kernel's drawing comes back as the PNG in the "image" trait and is painted whenever it
// changes, and also when the view is created: a reloaded page or a re-displayed pad shows the
// drawing the kernel holds, and drawing carries on from there.

function paintStroke(ctx, points, width) {
  ctx.fillStyle = "white";
  ctx.strokeStyle = "white";
  ctx.lineWidth = width;
  ctx.lineCap = "round";
  ctx.lineJoin = "round";
  if (points.length === 1) {
    ctx.beginPath();
    ctx.arc(points[0][0], points[0][1], width / 2, 0, 2 * Math.PI);
    ctx.fill();
    return;
  }
  ctx.beginPath();
  ctx.moveTo(points[0][0], points[0][1]);
  for (const [x, y] of points.slice(1)) ctx.lineTo(x, y);
  ctx.stroke();
}

function render({ model, el }) {
  const canvas = document.createElement("canvas");
  canvas.className = "hw2-pad-canvas";
  el.appendChild(canvas);
  const ctx = canvas.getContext("2d");
  let stroke = null;   // points of the stroke being drawn, or null while the pen is up
  let shown = 0;       // number of the newest kernel image requested, so older ones are dropped

  function resize() {
    const side = model.get("size");
    canvas.width = side;
    canvas.height = side;
    canvas.style.width = `${side}px`;
    canvas.style.height = `${side}px`;
  }

  function paintKernelImage() {
    const request = ++shown;
    const data = model.get("image");
    const repaint = (bitmap) => {
      if (request !== shown) return;
      ctx.fillStyle = "black";
      ctx.fillRect(0, 0, canvas.width, canvas.height);
      if (bitmap) ctx.drawImage(bitmap, 0, 0, canvas.width, canvas.height);
      if (stroke) paintStroke(ctx, stroke, model.get("stroke_width"));
    };
    if (!data || data.byteLength === 0) {
      repaint(null);
      return;
    }
    createImageBitmap(new Blob([data], { type: "image/png" })).then(repaint, () => repaint(null));
  }

  function position(event) {
    const box = canvas.getBoundingClientRect();
    return [(event.clientX - box.left) * canvas.width / box.width,
            (event.clientY - box.top) * canvas.height / box.height];
  }

  function down(event) {
    if (event.button !== 0) return;
    event.preventDefault();
    canvas.setPointerCapture(event.pointerId);
    stroke = [position(event)];
    paintStroke(ctx, stroke, model.get("stroke_width"));
  }

  function move(event) {
    if (!stroke) return;
    const point = position(event);
    paintStroke(ctx, [stroke[stroke.length - 1], point], model.get("stroke_width"));
    stroke.push(point);
  }

  function up() {
    if (!stroke) return;
    model.send({ type: "stroke", points: stroke });
    stroke = null;
  }

  canvas.addEventListener("pointerdown", down);
  canvas.addEventListener("pointermove", move);
  canvas.addEventListener("pointerup", up);
  canvas.addEventListener("pointercancel", up);
  canvas.addEventListener("lostpointercapture", up);
  model.on("change:image", paintKernelImage);
  const onSize = () => { resize(); paintKernelImage(); };
  model.on("change:size", onSize);
  resize();
  paintKernelImage();
  return () => {
    model.off("change:image", paintKernelImage);
    model.off("change:size", onSize);
  };
}

export default { render };
