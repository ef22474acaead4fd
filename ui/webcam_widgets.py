"""Two small browser-side webcam widgets (Streamlit Custom Components v2, inline, no build):

- ``burst_widget``: "hold to record". While the learner holds its button (the mouse, a
  finger, or Space / Enter held on the focused button), it grabs ``fps`` frames a second
  from ``getUserMedia`` (the camera opens at the first press and stays on, so until then
  the page's ``st.camera_input`` has it to itself), shrinks each in the browser to at most
  ``side`` pixels, encodes it as a JPEG data URL, and on release sends the whole burst as
  ONE trigger value ("burst": a list of data URLs), at most ``max_frames`` frames and
  ``max_bytes`` of them (it stops by itself at either cap). Its status line says how many
  frames it recorded.
- ``live_widget``: "live prediction". Once started (a toggle button), it sends one frame
  about every ``interval_ms`` ("frame": {"n": its number, "image": a data URL}; the page's
  ``on_frame`` callback reads it with ``sent_frame`` before its fragment reruns) and waits
  for the page to answer it (``answered``: the last frame number the page predicted, passed
  back in its data) before it sends the next, so a slow server is never flooded.

What they send is untrusted like any upload: the page parses it with
``cnnlib.uploads.burst`` (the decoding sandbox). Drawing and browser code only.
"""

from __future__ import annotations

from collections.abc import Callable

import streamlit as st

#: Look of both widgets: Streamlit's theme variables, so light and dark themes both fit.
_CSS = """
.cnnlab-cam { font-family: var(--st-font); color: var(--st-text-color); }
.cnnlab-cam video {
  display: block; width: 100%; max-width: 320px; border-radius: var(--st-base-radius, 0.5rem);
  background: var(--st-secondary-background-color); aspect-ratio: 4 / 3; object-fit: cover;
}
.cnnlab-cam button {
  margin-top: 0.5rem; padding: 0.4rem 0.9rem; font: inherit; cursor: pointer;
  color: var(--st-text-color); background: var(--st-background-color);
  border: 1px solid var(--st-border-color, rgba(49, 51, 63, 0.3));
  border-radius: var(--st-base-radius, 0.5rem); touch-action: none; user-select: none;
}
.cnnlab-cam button:hover { border-color: var(--st-primary-color); color: var(--st-primary-color); }
.cnnlab-cam button:focus-visible {
  outline: 2px solid var(--st-primary-color); outline-offset: 2px;
}
.cnnlab-cam button[aria-pressed="true"] {
  border-color: var(--st-primary-color); border-width: 2px;
}
.cnnlab-cam button:disabled { opacity: 0.6; cursor: not-allowed; }
.cnnlab-cam p { margin: 0.4rem 0 0; font-size: 0.875rem; }
"""

#: Shared by both widgets: the camera, and one frame as a JPEG data URL of at most side px.
_CAMERA_JS = """
async function openCamera(s) {
  if (s.stream) return true;
  if (!navigator.mediaDevices || !navigator.mediaDevices.getUserMedia) {
    s.say("This browser gives no camera to web pages: use the Take Photo button instead.");
    return false;
  }
  try {
    s.stream = await navigator.mediaDevices.getUserMedia({ video: true, audio: false });
  } catch (err) {
    s.say("No camera: allow camera access for this page in your browser, then reload it.");
    return false;
  }
  s.video.srcObject = s.stream;
  await s.video.play().catch(() => {});
  return true;
}

function closeCamera(s) {
  if (s.stream) s.stream.getTracks().forEach((t) => t.stop());
  s.stream = null;
  s.video.srcObject = null;
}

function grabFrame(s, side, quality) {
  const w = s.video.videoWidth, h = s.video.videoHeight;
  if (!w || !h) return null;
  const scale = Math.min(1, side / Math.max(w, h));
  s.canvas.width = Math.max(1, Math.round(w * scale));
  s.canvas.height = Math.max(1, Math.round(h * scale));
  s.canvas.getContext("2d").drawImage(s.video, 0, 0, s.canvas.width, s.canvas.height);
  return s.canvas.toDataURL("image/jpeg", quality);
}

function build(root, label) {
  const box = document.createElement("div");
  box.className = "cnnlab-cam";
  const video = document.createElement("video");
  video.muted = true;
  video.playsInline = true;
  video.setAttribute("aria-label", "Webcam preview");
  const button = document.createElement("button");
  button.type = "button";
  button.textContent = label;
  button.setAttribute("aria-pressed", "false");
  const status = document.createElement("p");
  status.setAttribute("role", "status");
  status.setAttribute("aria-live", "polite");
  box.append(video, button, status);
  root.appendChild(box);
  const s = { video, button, status, canvas: document.createElement("canvas"), stream: null };
  s.say = (text) => { status.textContent = text; };
  return s;
}

//: The widget's state per mounted element (the module is called again on every new value).
const INSTANCES = new WeakMap();

//: This element's state (made by setup the first time) with the run's data and sender;
//: returns [state, made now?] and the cleanup to return.
function mount(component, setup) {
  const { data, parentElement, setTriggerValue } = component;
  let s = INSTANCES.get(parentElement);
  const fresh = !s;
  if (fresh) {
    s = setup(parentElement, data);
    INSTANCES.set(parentElement, s);
  }
  s.data = data;
  s.send = setTriggerValue;
  return [s, fresh, () => { s.stopAll(); INSTANCES.delete(parentElement); }];
}
"""

_BURST_JS = (
    _CAMERA_JS
    + """
function setup(root, data) {
  const s = build(root, data.label);
  s.frames = [];
  s.chars = 0;
  s.timer = null;
  s.recording = false;
  const start = async () => {
    if (s.recording || s.data.disabled) return;
    s.recording = true;
    s.hinted = false;
    s.button.setAttribute("aria-pressed", "true");
    if (!(await openCamera(s))) { s.recording = false; return; }
    if (!s.recording) return;  // released while the camera opened
    s.frames = [];
    s.chars = 0;
    grab();
    s.timer = setInterval(grab, 1000 / s.data.fps);
  };
  const grab = () => {
    const d = s.data;
    if (s.frames.length >= d.max_frames) { stop(); return; }
    const url = grabFrame(s, d.side, d.quality);
    if (url === null) return;
    if (s.chars + url.length > d.max_chars) { stop(); return; }
    s.frames.push(url);
    s.chars += url.length;
    s.say(`Recording: ${s.frames.length} frame(s)…`);
  };
  const stop = () => {
    if (!s.recording) return;
    s.recording = false;
    clearInterval(s.timer);
    s.button.setAttribute("aria-pressed", "false");
    const frames = s.frames;
    s.frames = [];
    if (frames.length === 0) { s.say("Hold the button a little longer to record."); return; }
    s.say(`${frames.length} frame(s) recorded and sent for ${s.data.target}.`);
    s.send("burst", frames);
  };
  const b = s.button;
  b.addEventListener("pointerdown", (e) => {
    if (e.button !== 0) return;
    b.setPointerCapture(e.pointerId);
    start();
  });
  for (const ev of ["pointerup", "pointercancel", "lostpointercapture"]) {
    b.addEventListener(ev, stop);
  }
  b.addEventListener("keydown", (e) => {
    if (e.key !== " " && e.key !== "Enter") return;
    e.preventDefault();
    if (!e.repeat) start();
  });
  b.addEventListener("keyup", (e) => {
    if (e.key !== " " && e.key !== "Enter") return;
    e.preventDefault();
    stop();
  });
  b.addEventListener("blur", stop);
  b.addEventListener("contextmenu", (e) => e.preventDefault());
  s.stopAll = () => { stop(); closeCamera(s); };
  return s;
}

export default function (component) {
  const [s, , cleanup] = mount(component, setup);
  const data = s.data;
  s.button.textContent = data.label;
  s.button.disabled = Boolean(data.disabled);
  // The hint shows until the first recording says how many frames it took.
  if (data.disabled || (!s.recording && (s.hinted || !s.status.textContent))) {
    if (data.disabled) s.stopAll();
    s.say(data.hint);
    s.hinted = true;
  }
  return cleanup;
}
"""
)

_LIVE_JS = (
    _CAMERA_JS
    + """
//: Send again after this many milliseconds without an answer (a rerun that never came).
const PATIENCE_MS = 5000;

function setup(root, data) {
  const s = build(root, data.start_label);
  s.on = false;
  s.sent = 0;
  s.sentAt = 0;
  s.timer = null;
  const tick = () => {
    const d = s.data;
    const waiting = s.sent > (d.answered || 0);
    if (waiting && Date.now() - s.sentAt < PATIENCE_MS) return;
    const url = grabFrame(s, d.side, d.quality);
    if (url === null) return;
    s.sent += 1;
    s.sentAt = Date.now();
    s.send("frame", { n: s.sent, image: url });
  };
  const turn = async (on) => {
    s.on = on;
    s.button.setAttribute("aria-pressed", String(on));
    s.button.textContent = on ? s.data.stop_label : s.data.start_label;
    clearInterval(s.timer);
    if (!on) { closeCamera(s); s.say("Camera off."); return; }
    if (!(await openCamera(s))) {
      s.on = false;
      s.button.setAttribute("aria-pressed", "false");
      return;
    }
    s.say("Live: a frame about every second; the prediction is below.");
    s.timer = setInterval(tick, s.data.interval_ms);
  };
  s.button.addEventListener("click", () => turn(!s.on));
  s.stopAll = () => { clearInterval(s.timer); closeCamera(s); s.on = false; };
  return s;
}

export default function (component) {
  const [s, fresh, cleanup] = mount(component, setup);
  if (fresh) s.say("Camera off.");
  return cleanup;
}
"""
)

_burst = st.components.v2.component("cnnlab.webcam_burst", css=_CSS, js=_BURST_JS)
_live = st.components.v2.component("cnnlab.webcam_live", css=_CSS, js=_LIVE_JS)


def _ignore() -> None:
    """A trigger's callback: the value is read from the widget's result in the same run."""


def burst_widget(
    *,
    key: str,
    target: str,
    side: int,
    max_frames: int,
    max_bytes: int,
    fps: float = 5.0,
    disabled: bool = False,
) -> object | None:
    """The "hold to record" button with its camera preview and status line. Returns the
    burst it sent in this run (untrusted: a list of data URLs, for ``cnnlib.uploads.burst``)
    or None. ``target`` names the class the frames are for (shown in its status line)."""
    hint = (
        "Make and choose a class first."
        if disabled
        else "Hold the button, or hold Space or Enter on it, to record about "
        f"{fps:g} photos a second (at most {max_frames})."
    )
    data = {
        "label": "Hold to record" if disabled else f"Hold to record {target}",
        "target": target,
        "hint": hint,
        "side": int(side),
        "fps": float(fps),
        "quality": 0.85,
        "max_frames": int(max_frames),
        # the data URLs' text: base64 is 4/3 of the bytes, plus each URL's short prefix
        "max_chars": int(max_bytes) * 4 // 3,
        "disabled": bool(disabled),
    }
    result = _burst(key=key, data=data, on_burst_change=_ignore, height="content")
    return result.get("burst")


def live_widget(
    *, key: str, side: int, answered: int, on_frame: Callable[[], None], interval_ms: int = 1000
) -> None:
    """The live prediction's Start / Stop button, camera preview and status line.
    ``on_frame``: called when a frame arrives, before the script (or its fragment) reruns;
    ``sent_frame(key)`` then reads it. ``answered``: the number of the last frame the page
    predicted (the widget sends the next once it knows)."""
    data = {
        "start_label": "Start live prediction",
        "stop_label": "Stop live prediction",
        "side": int(side),
        "quality": 0.85,
        "interval_ms": int(interval_ms),
        "answered": int(answered),
    }
    _live(key=key, data=data, on_frame_change=on_frame, height="content")


def sent_frame(key: str) -> object | None:
    """In ``live_widget``'s ``on_frame`` callback: the frame it sent (untrusted:
    {"n": number, "image": data URL}), or None."""
    state = st.session_state.get(key)
    return state.get("frame") if state is not None else None
