"""The browser tests' machinery (tests/browser_lab.py): what it starts, it stops.

A JupyterLab server with a running kernel and a Chromium on its page are torn down when the test
body raises, and nothing of them is left running; a server that cannot start is an error that
names why, and leaves nothing behind either.
"""
import time

import psutil
import pytest

import browser_lab
from helpers import write_nb

CHROMIUM = browser_lab.chromium_path()
pytestmark = [pytest.mark.browser, pytest.mark.slow]


class Boom(Exception):
    pass


@pytest.mark.skipif(CHROMIUM is None, reason="no Chromium (/usr/bin/chromium): install Debian's "
                    "chromium (.ci/system-packages.sh) to run the browser tests")
def test_server_kernel_and_browser_are_gone_after_a_failing_test(tmp_path):
    (tmp_path / "root").mkdir()
    write_nb(tmp_path / "root" / "tiny.ipynb", "print(6 * 7)")
    seen, names = [], {}
    with pytest.raises(Boom):
        with browser_lab.JupyterLab(tmp_path / "root", tmp_path / "state") as lab:
            kernel = lab.api("POST", "/api/kernels", {"name": "python3"})
            with browser_lab.open_browser(CHROMIUM, tmp_path / "profile") as (context, alive):
                page = context.new_page()
                page.goto(lab.lab_url("tiny.ipynb"))
                page.wait_for_selector(".jp-Notebook .jp-Cell", timeout=120_000)
                deadline = time.monotonic() + 60
                while len(lab.processes()) < 3 and time.monotonic() < deadline:
                    time.sleep(0.5)  # the server, the kernel started above, the notebook's kernel
                seen = lab.processes() + alive()
                names = {p.pid: p.name() for p in seen}
                assert any(k["id"] == kernel["id"] for k in lab.api("GET", "/api/kernels"))
                # The server and the kernel started above at least; the notebook's own kernel
                # may still be waiting for JupyterLab's kernel dialog on a busy machine (CI).
                assert len(lab.processes()) >= 2 and alive()
                raise Boom("the test failed here")
    assert any("chrom" in n for n in names.values()), names
    gone, still = psutil.wait_procs(seen, timeout=15)
    assert not still, f"left running: {still}"
    assert not lab.running


def test_a_jupyterlab_that_cannot_start_is_an_error_and_leaves_nothing(tmp_path):
    missing = tmp_path / "no-such-root"
    lab = browser_lab.JupyterLab(missing, tmp_path / "state", startup_timeout=120)
    with pytest.raises((RuntimeError, OSError)) as failure:
        with lab:
            pass
    assert "JupyterLab" in str(failure.value) or "no-such-root" in str(failure.value)
    assert not lab.running and not lab.processes()
