"""A JupyterLab server and a headless Chromium for the browser tests (tests/test_browser*.py).

- :func:`chromium_path` finds the system Chromium (Debian's ``chromium``; ``.ci/system-packages.sh``
  installs it). Playwright drives it by ``executable_path``: its own browser download is never
  attempted.
- :class:`JupyterLab` starts ``python -m jupyterlab`` on a free port with a random token, in its
  own temporary root, runtime, config, settings and workspace folders, and stops it (kernels
  included) on exit, also when the test body raised. :meth:`JupyterLab.processes` lists the
  server and everything it started, so a test can check that nothing is left behind.
- :func:`open_browser` launches Chromium with a fresh profile folder.

Imported by the tests as ``browser_lab`` (pytest puts ``tests/`` on ``sys.path``).
"""
import contextlib
import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Dict, List, Optional

import psutil

#: Where Debian installs Chromium; HW2_CHROMIUM overrides it.
CHROMIUM_CANDIDATES = ("/usr/bin/chromium", "/usr/bin/chromium-browser")
#: Chromium flags that work headless in a container, as root, without network or GPU.
CHROMIUM_ARGS = ["--disable-gpu", "--disable-background-networking", "--disable-component-update",
                 "--disable-sync", "--no-first-run", "--no-default-browser-check",
                 "--disable-dev-shm-usage"]
#: JupyterLab settings for the tests: every cell stays in the page (no windowing), so a check of
#: the DOM sees all of them; no news or update pop-ups.
LAB_SETTINGS = {
    "@jupyterlab/notebook-extension/tracker.jupyterlab-settings": {"windowingMode": "none"},
    "@jupyterlab/apputils-extension/notification.jupyterlab-settings": {
        "checkForUpdates": False, "fetchNews": "false"},
}


def chromium_path() -> Optional[str]:
    """The system Chromium's executable, or None when there is none."""
    override = os.environ.get("HW2_CHROMIUM")
    if override:
        return override if os.access(override, os.X_OK) else None
    for candidate in CHROMIUM_CANDIDATES:
        if os.access(candidate, os.X_OK):
            return candidate
    return shutil.which("chromium")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _die_with_parent() -> None:
    """In the child before exec: get SIGTERM when the test process dies (Linux), so a killed
    pytest does not leave a server behind; the server then shuts its kernels down."""
    try:
        import ctypes

        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
    except OSError:
        pass


class JupyterLab:
    """A JupyterLab server for one test session; use as a context manager.

    :param root: The folder the server serves (the notebooks go here).
    :param state: A scratch folder for runtime, config, settings and workspaces.
    :param env: Extra environment for the server and its kernels.
    :param startup_timeout: Seconds to wait for the server to answer.
    """

    def __init__(self, root: Path, state: Path, env: Optional[Dict[str, str]] = None,
                 startup_timeout: float = 120.0):
        self.root, self.state = Path(root), Path(state)
        self.extra_env = dict(env or {})
        self.startup_timeout = startup_timeout
        self.port = free_port()
        self.token = secrets.token_hex(24)
        self.proc: Optional[subprocess.Popen] = None
        self.log_path = self.state / "jupyterlab.log"
        self._seen: Dict[int, psutil.Process] = {}

    def __repr__(self) -> str:
        return f"JupyterLab(root={str(self.root)!r}, port={self.port}, running={self.running})"

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def lab_url(self, path: str = "") -> str:
        """The address that opens ``path`` (relative to the root) in JupyterLab, token included,
        in a fresh workspace of its own (only that document open)."""
        workspace = "".join(c if c.isalnum() else "-" for c in path) or "root"
        return f"{self.url}/lab/workspaces/{workspace}/tree/{path}?reset&token={self.token}"

    def _environment(self) -> Dict[str, str]:
        env = dict(os.environ)
        folders = {"JUPYTER_RUNTIME_DIR": "runtime", "JUPYTER_CONFIG_DIR": "config",
                   "JUPYTERLAB_SETTINGS_DIR": "settings", "JUPYTERLAB_WORKSPACES_DIR": "workspaces",
                   "IPYTHONDIR": "ipython", "MPLCONFIGDIR": "matplotlib"}
        for key, name in folders.items():
            (self.state / name).mkdir(parents=True, exist_ok=True)
            env[key] = str(self.state / name)
        env.pop("MPLBACKEND", None)  # the notebooks' inline backend, as for a student
        env.update(self.extra_env)
        return env

    def _write_settings(self) -> None:
        for name, values in LAB_SETTINGS.items():
            plugin, file = name.rsplit("/", 1)
            folder = self.state / "settings" / plugin
            folder.mkdir(parents=True, exist_ok=True)
            (folder / file).write_text(json.dumps(values))

    def start(self) -> "JupyterLab":
        self.state.mkdir(parents=True, exist_ok=True)
        env = self._environment()
        self._write_settings()
        cmd = [sys.executable, "-m", "jupyterlab", "--no-browser", f"--port={self.port}",
               "--ip=127.0.0.1", "--port-retries=0", f"--IdentityProvider.token={self.token}",
               f"--ServerApp.root_dir={self.root}", "--ServerApp.open_browser=False",
               "--LabApp.news_url=", "--ServerApp.shutdown_no_activity_timeout=3600"]
        if os.geteuid() == 0:
            cmd.append("--allow-root")
        log = open(self.log_path, "wb")
        try:
            self.proc = subprocess.Popen(cmd, cwd=self.root, env=env, stdout=log,
                                         stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                         preexec_fn=_die_with_parent)
        finally:
            log.close()
        self._remember(psutil.Process(self.proc.pid))
        deadline = time.monotonic() + self.startup_timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"JupyterLab exited with status {self.proc.returncode} before "
                                   f"answering:\n{self.log_tail()}")
            if self._answers():
                return self
            time.sleep(0.3)
        raise RuntimeError(f"JupyterLab did not answer on {self.url} within "
                           f"{self.startup_timeout:.0f}s:\n{self.log_tail()}")

    def _answers(self) -> bool:
        try:
            self.api("GET", "/api/status")
            return True
        except (urllib.error.URLError, ConnectionError, OSError):
            return False

    def api(self, method: str, path: str, body=None):
        """One call of the server's REST API; the decoded JSON answer (None when empty)."""
        data = None if body is None else json.dumps(body).encode()
        req = urllib.request.Request(self.url + path, data=data, method=method,
                                     headers={"Authorization": f"token {self.token}",
                                              "Content-Type": "application/json"})
        with urllib.request.urlopen(req, timeout=10) as answer:
            text = answer.read()
        return json.loads(text) if text else None

    def log_tail(self, chars: int = 4000) -> str:
        try:
            return self.log_path.read_text(errors="replace")[-chars:]
        except OSError:
            return "(no log)"

    def _remember(self, proc: psutil.Process) -> None:
        self._seen.setdefault(proc.pid, proc)

    def processes(self) -> List[psutil.Process]:
        """The server and every process it started (kernels), as far as seen so far, that are
        still running."""
        if self.running:
            try:
                server = psutil.Process(self.proc.pid)
                for child in server.children(recursive=True):
                    self._remember(child)
            except psutil.NoSuchProcess:
                pass
        return [p for p in self._seen.values() if _alive(p)]

    def stop(self, grace: float = 20.0) -> None:
        """Shut the server down (it stops its kernels), then kill whatever survived."""
        if self.proc is None:
            return
        self.processes()  # note the kernels before the server goes
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)  # twice: jupyter_server asks once, then exits
            time.sleep(0.2)
            self.proc.send_signal(signal.SIGINT)
            try:
                self.proc.wait(grace)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)
        survivors = [p for p in self._seen.values() if _alive(p)]
        for p in survivors:
            with contextlib.suppress(psutil.NoSuchProcess):
                p.kill()
        psutil.wait_procs(survivors, timeout=10)

    def __enter__(self) -> "JupyterLab":
        try:
            return self.start()
        except BaseException:
            self.stop()
            raise

    def __exit__(self, *exc) -> None:
        self.stop()


def _alive(proc: psutil.Process) -> bool:
    try:
        return proc.is_running() and proc.status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


@contextlib.contextmanager
def open_browser(executable: str, profile: Path, viewport=(1400, 1000)):
    """A headless Chromium (a Playwright persistent context with a fresh profile folder).

    Yields ``(context, pids)``: the browser context and a function listing the browser's
    processes still running (for the leftover-process checks).
    """
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        context = pw.chromium.launch_persistent_context(
            str(profile), executable_path=executable, headless=True, args=CHROMIUM_ARGS,
            viewport={"width": viewport[0], "height": viewport[1]}, chromium_sandbox=False)
        # The browser's processes are the ones whose command line names the profile folder.
        procs = [p for p in psutil.process_iter(["cmdline"])
                 if any(str(profile) in part for part in (p.info["cmdline"] or []))]
        try:
            yield context, lambda: [p for p in procs if _alive(p)]
        finally:
            context.close()
