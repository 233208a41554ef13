"""report.html in a real headless Chromium: it renders, every chart loads, and hostile
model output stays inert.

The browser is driven over the Chrome DevTools Protocol on a pipe
(``--remote-debugging-pipe``: fd 3 in, fd 4 out, NUL-separated JSON), which needs only
the Debian ``chromium`` package and the standard library: no driver, no download.
DevTools evaluation is not subject to the page's Content-Security-Policy, so the test
can read the DOM of a page that forbids every script.
"""

from __future__ import annotations

import fcntl
import json
import os
import select
import shutil
import subprocess
import time
from pathlib import Path
from typing import Any

import pytest

from robustify import reporting as R
from robustify.reporting import charts
from robustify.reporting.document import CSP
from robustify.reporting.format import escape_html

from .results_factory import HOSTILE_TEXTS, make_results

pytestmark = pytest.mark.slow

CHROMIUM = next((p for p in (shutil.which("chromium"), shutil.which("chromium-browser"),
                             shutil.which("google-chrome")) if p), None)
if CHROMIUM is None:
    pytest.skip("Chromium is not installed (Debian: apt-get install chromium); the browser "
                "check of report.html needs it", allow_module_level=True)

FLAGS = ("--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         "--remote-debugging-pipe")
N_CHARTS = len(charts.names())


class Browser:
    """A minimal CDP client for one headless Chromium over the debugging pipe."""

    def __init__(self, profile: Path, timeout: float = 30.0) -> None:
        self.timeout = timeout
        to_child_r, self._to_child = os.pipe()
        self._from_child, from_child_w = os.pipe()
        # Park the child's ends above fd 10 first, so placing them on 3 and 4 in the
        # child cannot overwrite one with the other.
        child_r = fcntl.fcntl(to_child_r, fcntl.F_DUPFD, 10)
        child_w = fcntl.fcntl(from_child_w, fcntl.F_DUPFD, 10)
        os.close(to_child_r)
        os.close(from_child_w)

        def place_pipe() -> None:  # runs in the child between fork and exec
            os.dup2(child_r, 3)
            os.dup2(child_w, 4)

        self.proc = subprocess.Popen(
            [CHROMIUM, *FLAGS, f"--user-data-dir={profile}", "about:blank"],
            preexec_fn=place_pipe, pass_fds=(3, 4), stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        os.close(child_r)
        os.close(child_w)
        self._buffer = b""
        self._next_id = 0
        self.events: list[dict[str, Any]] = []
        self.session: str | None = None

    def _read_message(self, deadline: float) -> dict[str, Any]:
        while b"\0" not in self._buffer:
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError("Chromium did not answer in time")
            ready, _, _ = select.select([self._from_child], [], [], left)
            if ready:
                chunk = os.read(self._from_child, 1 << 16)
                if not chunk:
                    raise RuntimeError("Chromium closed the debugging pipe")
                self._buffer += chunk
        message, self._buffer = self._buffer.split(b"\0", 1)
        return json.loads(message)

    def call(self, method: str, params: dict[str, Any] | None = None, *,
             session: bool = True) -> dict[str, Any]:
        self._next_id += 1
        message: dict[str, Any] = {"id": self._next_id, "method": method, "params": params or {}}
        if session and self.session:
            message["sessionId"] = self.session
        os.write(self._to_child, json.dumps(message).encode() + b"\0")
        deadline = time.monotonic() + self.timeout
        while True:
            reply = self._read_message(deadline)
            if reply.get("id") == self._next_id:
                if "error" in reply:
                    raise RuntimeError(f"{method}: {reply['error']}")
                return reply.get("result", {})
            self.events.append(reply)

    def wait_for(self, event: str) -> dict[str, Any]:
        for seen in self.events:
            if seen.get("method") == event:
                return seen
        deadline = time.monotonic() + self.timeout
        while True:
            message = self._read_message(deadline)
            self.events.append(message)
            if message.get("method") == event:
                return message

    def open(self, url: str) -> None:
        target = self.call("Target.createTarget", {"url": "about:blank"}, session=False)
        attached = self.call("Target.attachToTarget",
                             {"targetId": target["targetId"], "flatten": True}, session=False)
        self.session = attached["sessionId"]
        self.call("Page.enable")
        self.call("Runtime.enable")
        self.events.clear()
        self.call("Page.navigate", {"url": url})
        self.wait_for("Page.loadEventFired")

    def js(self, expression: str) -> Any:
        result = self.call("Runtime.evaluate", {"expression": expression,
                                                "returnByValue": True, "awaitPromise": True})
        if "exceptionDetails" in result:
            raise RuntimeError(f"evaluation failed: {result['exceptionDetails']}")
        return result["result"].get("value")

    def close(self) -> None:
        try:
            self.call("Browser.close", session=False)
        except (RuntimeError, TimeoutError, OSError):
            pass
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(timeout=10)
        for fd in (self._to_child, self._from_child):
            try:
                os.close(fd)
            except OSError:
                pass


@pytest.fixture
def browser(tmp_path):
    b = Browser(tmp_path / "profile")
    try:
        yield b
    finally:
        b.close()


@pytest.fixture(scope="module")
def report_html(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("browser-report")
    df = make_results(("local:smollm2", "openai:gpt-4o-mini"), n_items=12, seed=3,
                      hostile=True, clean_accuracy={"local:smollm2": 0.8,
                                                    "openai:gpt-4o-mini": 0.9})
    # Make sure each payload is a flipped answer, so the examples section shows it.
    for n, payload in enumerate(HOSTILE_TEXTS):
        item = df["item_id"] == f"item-00{n + 3}"
        df.loc[item & (df["spec"] == "clean"), ["score", "response"]] = [1.0, "A"]
        df.loc[item & (df["spec"] != "clean"), ["score", "response"]] = [0.0, payload]
    files = R.write_report(df, out, title="Browser check", manifest={"seed": 0}, n_boot=200)
    return files["html"]


_STATE = """(() => ({
  title: document.title,
  pwned: document.body.getAttribute('data-pwned'),
  scripts: document.querySelectorAll('script').length,
  links: document.querySelectorAll('a').length,
  handlers: Array.from(document.querySelectorAll('*')).filter(
      e => Array.from(e.attributes).some(a => a.name.startsWith('on'))).length,
  images: Array.from(document.images).map(i => [i.complete, i.naturalWidth, i.naturalHeight]),
  svgs: Array.from(document.querySelectorAll('svg')).map(
      s => [s.getBoundingClientRect().width, s.getBoundingClientRect().height]),
  text: document.body.innerText,
  height: document.body.scrollHeight,
  headings: Array.from(document.querySelectorAll('h2')).map(h => h.textContent),
}))()"""


def test_report_renders_with_every_chart(browser, report_html):
    browser.open(report_html.as_uri())
    state = browser.js(_STATE)
    assert state["title"] == "Browser check"
    assert state["height"] > 2000
    visible = [img for img in state["images"] if img[0] and img[1] > 0 and img[2] > 0]
    visible += [svg for svg in state["svgs"] if svg[0] > 0 and svg[1] > 0]
    assert len(state["images"]) + len(state["svgs"]) == N_CHARTS
    assert len(visible) == N_CHARTS, state["images"]
    # every chart of the chart list has its section, in the list's order
    assert state["headings"][:N_CHARTS] == [charts.get(n).title for n in charts.names()]
    assert "Examples of flipped answers" in state["headings"]
    shot = browser.call("Page.captureScreenshot", {"format": "png"})
    assert len(shot["data"]) > 10_000


def test_hostile_model_output_does_not_run(browser, report_html):
    browser.open(report_html.as_uri())
    time.sleep(0.3)  # give a handler that slipped through a moment to fire
    state = browser.js(_STATE)
    assert state["title"] == "Browser check"
    assert state["pwned"] is None
    assert state["scripts"] == 0 and state["handlers"] == 0 and state["links"] == 0
    for payload in HOSTILE_TEXTS:
        assert payload in state["text"], f"payload not shown as text: {payload!r}"
    dialogs = [e for e in browser.events if e.get("method") == "Page.javascriptDialogOpening"]
    assert dialogs == []


def test_the_detector_would_catch_a_raw_payload(browser, tmp_path):
    # Control: the same payloads interpolated raw, without CSP, do run in this browser,
    # so the checks above would notice if the report let them through.
    page = tmp_path / "raw.html"
    page.write_text("<!DOCTYPE html><html><head><title>Browser check</title></head><body>"
                    + HOSTILE_TEXTS[1] + "</body></html>")
    browser.open(page.as_uri())
    deadline = time.monotonic() + 5
    state = browser.js(_STATE)
    while state["pwned"] is None and time.monotonic() < deadline:
        time.sleep(0.1)
        state = browser.js(_STATE)
    assert state["title"] == "PWNED-img" and state["pwned"] == "img"


def test_the_page_policy_alone_blocks_a_raw_payload(browser, tmp_path):
    # Defence in depth: even if some text escaped the escaping, the report's own
    # template and Content-Security-Policy would keep it from running.
    from importlib import resources
    from string import Template

    template = Template(resources.files("robustify").joinpath("templates/report.html")
                        .read_text(encoding="utf-8"))
    page = tmp_path / "raw-with-csp.html"
    page.write_text(template.substitute(csp=escape_html(CSP), version="test", title="Browser check",
                                        body=HOSTILE_TEXTS[0] + HOSTILE_TEXTS[1]))
    browser.open(page.as_uri())
    time.sleep(0.5)
    state = browser.js(_STATE)
    assert state["title"] == "Browser check" and state["pwned"] is None


_LAYOUT = """(() => {
  const details = Array.from(document.querySelectorAll('#browse ~ details'));
  const closedRows = Array.from(document.querySelectorAll('#browse ~ details tr'))
      .filter(r => r.checkVisibility()).length;
  document.querySelectorAll('details').forEach(d => d.open = true);
  const openRows = Array.from(document.querySelectorAll('#browse ~ details tbody tr'))
      .filter(r => r.checkVisibility()).length;
  const wide = Array.from(document.querySelectorAll('.table-wrap')).filter(
      w => w.getBoundingClientRect().right > document.documentElement.clientWidth + 1).length;
  return {groups: details.length, closedRows, openRows, wide,
          summaries: details.map(d => d.querySelector('summary').textContent),
          pageWidth: document.documentElement.scrollWidth,
          viewport: document.documentElement.clientWidth,
          text: document.body.innerText};
})()"""


def test_browse_section_folds_and_tables_fit_1280_px(browser, report_html):
    """Every row is reachable by opening groups (no script runs), and no table makes the
    page wider than a 1280 px window, even with every group open."""
    browser.open(report_html.as_uri())
    browser.call("Emulation.setDeviceMetricsOverride",
                 {"width": 1280, "height": 900, "deviceScaleFactor": 1, "mobile": False})
    state = browser.js(_LAYOUT)
    assert state["viewport"] <= 1280 and state["pageWidth"] <= 1280, state["pageWidth"]
    assert state["wide"] == 0
    # closed groups hide their rows; opened, every results row shows (12 items x 2 models x
    # (1 clean + 3 transforms x 3 severities))
    assert state["closedRows"] == 0
    assert state["openRows"] == 2 * 12 * (1 + 3 * 3)
    assert state["summaries"][0].startswith("clean items: 24 rows, ")
    assert [s.split(":")[0] for s in state["summaries"][1:]] == ["typos", "slang", "truncation"]
    for payload in HOSTILE_TEXTS:  # shown as text inside the opened groups too
        assert payload in state["text"]
