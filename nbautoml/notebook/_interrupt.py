"""Stop for a blocking search: a Bokeh button whose click runs in the browser and asks the Jupyter server to
interrupt this kernel, because a widget click waits behind the running cell.

Measured in JupyterLab 4.6 / ipykernel 7.4: an ipywidgets Button's click is a comm message that the kernel
handles only after a blocking cell ends (also on a kernel subshell: ipykernel answers a comm on the shell that
last published on it). The kernel's own interrupt, by contrast, stops a blocking search in well under a second
(``Study.optimize`` turns the KeyboardInterrupt into ``stop()`` and returns, so the next queued cell still runs).
So the button's ``CustomJS`` callback POSTs to the server's documented REST route
``api/kernels/<kernel_id>/interrupt`` with the ``_xsrf`` cookie as ``X-XSRFToken`` (the header JupyterLab's own
requests carry), the base URL read from the page's ``jupyter-config-data``. The kernel id is the name of the
kernel's connection file, ``kernel-<id>.json``, which Jupyter Server gives every kernel it starts. The button is
enabled by Python only while this study runs blocking in this kernel; a click disables it at once in the page.

:func:`watch_kernel` uses the same route to tell a panel whose kernel is gone: a shut-down kernel closes no
comm, so ipywidgets marks its views disconnected only on a restart. A ``document_ready`` callback (once per
kernel and page) asks ``api/kernels/<id>`` every few seconds and, on 404, marks the panels of that kernel.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

__all__ = ["InterruptButton", "kernel_class", "kernel_id", "watch_kernel"]

SERVER_JS = """
const node = document.getElementById("jupyter-config-data");
const config = node ? JSON.parse(node.textContent) : {};
const base = (config.baseUrl || "/").replace(/\\/?$/, "/");
const match = document.cookie.match(/(?:^|;\\s*)_xsrf=([^;]*)/);
const headers = {};
if (match) { headers["X-XSRFToken"] = decodeURIComponent(match[1]); }
if (config.token) { headers["Authorization"] = "token " + config.token; }
"""
CLICK_JS = """
if (button.disabled) { return; }
button.disabled = true;
button.label = "Stopping…";
""" + SERVER_JS + """
fetch(base + "api/kernels/" + encodeURIComponent(kernel) + "/interrupt",
      {method: "POST", headers: headers, credentials: "same-origin"})
  .then((reply) => { if (!reply.ok) { button.label = "Stop failed (HTTP " + reply.status + ")"; } })
  .catch((error) => { button.label = "Stop failed: " + error; });
"""
WATCH_SECONDS = 3
WATCH_JS = """
const watching = window.nbautomlKernelWatch = window.nbautomlKernelWatch || {};
if (watching[kernel]) { return; }
watching[kernel] = true;
""" + SERVER_JS + """
const timer = setInterval(() => {
  fetch(base + "api/kernels/" + encodeURIComponent(kernel), {headers: headers, credentials: "same-origin"})
    .then((reply) => {
      if (reply.status !== 404) { return; }
      clearInterval(timer);
      delete watching[kernel];
      for (const panel of document.querySelectorAll("." + css)) { panel.classList.add("nbautoml-kernel-gone"); }
    })
    .catch(() => {});
}, period);
"""


def kernel_class(kernel: str) -> str:
    """The CSS class that ties a panel to its kernel (the watcher finds the panels by it)."""
    return f"nbautoml-kernel-{kernel}"


def watch_kernel(model: Any, kernel: str) -> Any:
    """Put ``model`` in a Bokeh document that, once drawn, watches ``kernel`` (module docstring); returns it."""
    from bokeh.document import Document
    from bokeh.models import CustomJS

    document = Document()
    document.add_root(model)
    document.js_on_event("document_ready", CustomJS(args={"kernel": kernel, "css": kernel_class(kernel),
                                                          "period": WATCH_SECONDS * 1000},
                                                    code=WATCH_JS))
    return model


def kernel_id() -> str | None:
    """This kernel's id as Jupyter Server knows it (from ``kernel-<id>.json``), or None outside such a kernel."""
    try:
        from ipykernel import get_connection_file

        name = Path(get_connection_file()).name
    except Exception:  # not in an ipykernel, or no connection file
        return None
    match = re.fullmatch(r"kernel-([0-9A-Za-z-]+)\.json", name)
    return match.group(1) if match else None


class InterruptButton:
    """The browser-side Stop: a one-button Bokeh document shown through jupyter_bokeh."""

    def __init__(self, kernel: str, armed: bool) -> None:
        """``armed``: enabled from the start. Set it here, not later: a change made before the page has drawn
        the widget is lost (jupyter_bokeh sends the document once, at creation, then only patches)."""
        from bokeh.models import Button, CustomJS  # type: ignore[attr-defined]

        from nbautoml.notebook._render import _BokehWidget

        self.kernel = kernel
        self.button = Button(label="Stop", button_type="danger", disabled=not armed, width=90, height=30,
                             css_classes=["nbautoml-interrupt"], name="nbautoml-interrupt")
        self.button.js_on_click(CustomJS(args={"button": self.button, "kernel": kernel}, code=CLICK_JS))
        self.widget: Any = _BokehWidget(self.button)
        self.widget.add_class("nbautoml-interrupt-box")
        self._armed = armed

    def arm(self, armed: bool) -> None:
        """Enable while the study runs blocking (one document event per change, none when unchanged)."""
        if armed == self._armed:
            return
        self._armed = armed
        self.button.disabled = not armed
        self.button.label = "Stop"
