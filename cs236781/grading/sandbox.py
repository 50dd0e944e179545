"""Run one probe of a student's code in a child process that cannot reach out.

The child is ``python -I -S probe.py`` with the student's folder first on ``sys.path`` and
the interpreter's ``site-packages`` after it (``-S``: no ``.pth`` file runs, so an editable
install of the grader's own ``hw2`` is never importable). With bubblewrap (``bwrap``) the
child sees the file system read-only, without the grader's repository, the output folder,
``/root``, ``/home`` and ``/tmp``; only its run folder is writable; it has no network and its
own process namespace. Without bubblewrap only the resource limits apply (:data:`NO_BWRAP_NOTE`).
When the grader runs as root the child (bwrap included) runs as ``nobody``.

Limits (:class:`Limits`): wall time (the whole process group is killed), CPU time, address
space, processes, the size of any file written (stdout/stderr included: they go to files of
the run folder and are cut when read back), and the thread count of torch and its libraries.
"""
import os
import resource
import shutil
import signal
import subprocess
import sys
import sysconfig
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, List, Optional, Sequence

#: The unprivileged account student code runs as when the grader is root.
NOBODY_UID = NOBODY_GID = 65534
#: Said in results.json's ``output`` when bubblewrap is missing.
NO_BWRAP_NOTE = ("bubblewrap (bwrap) was not found: student code ran with resource limits only "
                 "(no network or file-system isolation)")
#: What a child's stdout/stderr keeps when read back.
OUTPUT_TAIL = 4000


@dataclass(frozen=True)
class Limits:
    """Per-part limits. Sizes in bytes, times in seconds."""

    wall_time: float = 120.0
    cpu_time: float = 600.0
    address_space: int = 6 * 2 ** 30
    threads: int = 2
    processes: int = 512
    file_size: int = 256 * 2 ** 20

    def __repr__(self):
        return (f"Limits(wall_time={self.wall_time}, address_space={self.address_space}, "
                f"threads={self.threads}, processes={self.processes}, file_size={self.file_size})")


@dataclass
class ChildRun:
    """How a child ended: ``returncode`` (negative: killed by that signal), ``timed_out``,
    the last characters of its stdout/stderr, and its wall time."""

    returncode: Optional[int]
    timed_out: bool
    stdout: str
    stderr: str
    seconds: float

    def failure(self, limits: Limits) -> Optional[str]:
        """One line saying why the child ended abnormally, or None for exit status 0."""
        if self.timed_out:
            return f"killed after the {limits.wall_time:g} s wall-time limit"
        code = self.returncode
        if code == 0:
            return None
        # bwrap reports a child killed by signal N as exit status 128 + N.
        signum = -code if code is not None and code < 0 else (code - 128 if code and code > 128 else None)
        if signum in signal.Signals._value2member_map_:
            name = signal.Signals(signum).name
            why = {"SIGXFSZ": f"wrote or printed more than {limits.file_size // 2 ** 20} MiB",
                   "SIGXCPU": f"used more than {limits.cpu_time:g} s of CPU time",
                   "SIGSEGV": "crashed (segmentation fault)",
                   "SIGKILL": "was killed (out of memory or a limit)"}.get(name, "was killed")
            return f"the process {why} ({name}, exit status {code})"
        tail = last_line(self.stderr)
        return f"the process exited with status {code}" + (f": {tail}" if tail else "")

    def __repr__(self):
        return f"ChildRun(returncode={self.returncode}, timed_out={self.timed_out})"


def last_line(text: str) -> str:
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    return lines[-1][:300] if lines else ""


def bwrap_path() -> Optional[str]:
    """The bubblewrap executable, or None (``HW2_GRADER_NO_BWRAP=1`` pretends it is missing)."""
    if os.environ.get("HW2_GRADER_NO_BWRAP", "").strip() in ("1", "true", "yes"):
        return None
    return shutil.which("bwrap")


def child_python() -> str:
    """The interpreter the child runs: this one, through its venv path (not resolved)."""
    return sys.executable


def site_packages() -> List[str]:
    """The ``site-packages`` folders of this interpreter (added by hand in the child)."""
    paths = sysconfig.get_paths()
    return list(dict.fromkeys(str(Path(paths[k])) for k in ("purelib", "platlib")))


def _limit(limits: Limits, as_nobody: bool):
    """The child's pre-exec: its own session, the rlimits, and (fallback without bwrap, as
    root) the switch to ``nobody``."""
    def apply():
        os.setsid()
        cpu = int(limits.cpu_time)
        resource.setrlimit(resource.RLIMIT_CPU, (cpu, cpu + 5))
        resource.setrlimit(resource.RLIMIT_AS, (limits.address_space, limits.address_space))
        resource.setrlimit(resource.RLIMIT_FSIZE, (limits.file_size, limits.file_size))
        resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
        # RLIMIT_NPROC counts the processes of the child's (final) user.
        resource.setrlimit(resource.RLIMIT_NPROC, (limits.processes, limits.processes))
        if as_nobody:
            os.setgroups([])
            os.setgid(NOBODY_GID)
            os.setuid(NOBODY_UID)
    return apply


def _bwrap_args(bwrap: str, student: Path, run_dir: Path, probe_dir: Path,
                hidden: Sequence[Path], as_root: bool) -> List[str]:
    """The bwrap command line: read-only root, private /tmp, the grader's folders hidden,
    the interpreter's folders bound back (at their own paths, so a venv under /root still
    works for ``nobody``), the student ro, the run folder rw. As root, bwrap runs privileged
    and ``setpriv`` switches to ``nobody`` inside (the only capabilities kept for it)."""
    args = [bwrap, "--ro-bind", "/", "/", "--dev", "/dev", "--proc", "/proc",
            "--unshare-net", "--unshare-pid", "--unshare-ipc", "--unshare-uts",
            "--new-session", "--die-with-parent"]
    hidden = sorted((p for p in hidden if p.exists()), key=lambda p: len(p.parts))
    mounted: List[Path] = []
    made = set()

    def open_path_to(dest: Path) -> None:
        # Folders bwrap makes inside a hidden tmpfs are 0700: make them 0755 for ``nobody``.
        for folder in reversed(dest.parents):
            if folder not in made and any(h in folder.parents or h == folder for h in mounted) \
                    and folder not in mounted:
                args.extend(["--perms", "0755", "--dir", str(folder)])
                made.add(folder)

    for path in hidden:
        open_path_to(path)
        args += ["--tmpfs", str(path)]
        mounted.append(path)
    binds = [("--ro-bind", p.resolve(), p) for p in interpreter_dirs() if p.is_dir()]
    binds += [("--ro-bind", student, student), ("--ro-bind", probe_dir, probe_dir),
              ("--bind", run_dir, run_dir)]
    for flag, src, dest in binds:
        open_path_to(dest)
        args += [flag, str(src), str(dest)]
    for path in hidden:  # the hiding tmpfs mounts turn read-only: a write there fails
        args += ["--remount-ro", str(path)]
    args += ["--chdir", str(run_dir)]
    if as_root:
        args += ["--cap-add", "CAP_SETUID", "--cap-add", "CAP_SETGID", "--",
                 "setpriv", f"--reuid={NOBODY_UID}", f"--regid={NOBODY_GID}", "--clear-groups",
                 "--inh-caps=-all", "--bounding-set=-all", "--no-new-privs"]
    else:
        args += ["--"]
    return args


def hidden_paths(grader_root: Path, out: Path) -> List[Path]:
    """What the child must not see: the grader's repository, the output folder, homes and
    temporary folders. The interpreter's own folders are bound back on top."""
    found = [Path("/root"), Path("/home"), Path("/tmp"), Path("/var/tmp"), Path("/run"),
             grader_root, out]
    return list(dict.fromkeys(p.resolve() for p in found))


def interpreter_dirs() -> List[Path]:
    """Folders the child's interpreter needs: the venv (as named and resolved) and the base
    installation."""
    found = []
    for prefix in (sys.prefix, sys.base_prefix, sys.exec_prefix, sys.base_exec_prefix):
        for p in (Path(prefix), Path(prefix).resolve()):
            found.append(p)
    unique = []
    for p in dict.fromkeys(found):
        if not any(p != q and q in p.parents for q in found):
            unique.append(p)
    return unique


def run_child(script: Path, args: Sequence[str], *, student: Path, run_dir: Path, limits: Limits,
              grader_root: Path, out: Path, env_extra: Optional[Dict[str, str]] = None) -> ChildRun:
    """Run ``python -I -S script args...`` on the student's code under the limits.

    :param script: The probe script (its folder is bound read-only).
    :param student: The student's project root (holds ``hw2/``), first on ``sys.path``.
    :param run_dir: The only writable folder; stdout/stderr go to files there.
    :param grader_root: The grader's repository, hidden from the child.
    :param out: The output folder, hidden except for ``run_dir``.
    """
    run_dir.mkdir(parents=True, exist_ok=True)
    as_nobody = os.geteuid() == 0
    if as_nobody:
        os.chown(run_dir, NOBODY_UID, NOBODY_GID)
    stdout_path, stderr_path = run_dir / "stdout.txt", run_dir / "stderr.txt"
    threads = str(limits.threads)
    env = {"PATH": "/usr/local/bin:/usr/bin:/bin", "HOME": str(run_dir), "TMPDIR": str(run_dir),
           "LANG": "C.UTF-8", "PYTHONDONTWRITEBYTECODE": "1", "PYTHONHASHSEED": "0",
           "OMP_NUM_THREADS": threads, "MKL_NUM_THREADS": threads,
           "OPENBLAS_NUM_THREADS": threads, "MPLBACKEND": "Agg", "MPLCONFIGDIR": str(run_dir),
           "HW2_GRADER_SITE": os.pathsep.join(site_packages()),
           "HW2_GRADER_STUDENT": str(student), "HW2_GRADER_THREADS": threads}
    env.update(env_extra or {})
    command = [child_python(), "-I", "-S", str(script), *args]
    bwrap = bwrap_path()
    if bwrap:
        command = _bwrap_args(bwrap, student, run_dir, script.parent,
                              hidden_paths(grader_root, out), as_nobody) + command
    switch_user = as_nobody and not bwrap and _nobody_can_run()
    with open(stdout_path, "wb") as so, open(stderr_path, "wb") as se:
        if as_nobody:
            os.fchown(so.fileno(), NOBODY_UID, NOBODY_GID)
            os.fchown(se.fileno(), NOBODY_UID, NOBODY_GID)
        start = time.monotonic()
        proc = subprocess.Popen(command, stdin=subprocess.DEVNULL, stdout=so, stderr=se,
                                env=env, cwd=str(run_dir),
                                preexec_fn=_limit(limits, switch_user))
        timed_out = False
        try:
            proc.wait(timeout=limits.wall_time)
        except subprocess.TimeoutExpired:
            timed_out = True
        _kill_group(proc)
        seconds = time.monotonic() - start
    return ChildRun(None if timed_out else proc.returncode, timed_out,
                    _tail(stdout_path), _tail(stderr_path), seconds)


def _nobody_can_run() -> bool:
    """Whether ``nobody`` can execute this interpreter (it cannot when it lives under a
    private folder such as /root): without bwrap the child then stays root, and says so."""
    return all(_others_can_enter(p) for p in Path(child_python()).resolve().parents)


def _others_can_enter(path: Path) -> bool:
    try:
        return bool(path.stat().st_mode & 0o001)
    except OSError:
        return False


def run_as_note() -> Optional[str]:
    """A line for results.json when student code cannot run unprivileged, else None."""
    if os.geteuid() == 0 and not bwrap_path() and not _nobody_can_run():
        return ("the interpreter is not reachable by the unprivileged user, so without "
                "bubblewrap student code ran as root")
    return None


def _kill_group(proc: subprocess.Popen) -> None:
    """Kill the child's session (its own group: it called setsid) and reap the child."""
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass
    proc.wait()


def _tail(path: Path, limit: int = OUTPUT_TAIL) -> str:
    """The last ``limit`` characters of a (maybe huge) output file, then the file removed."""
    try:
        with open(path, "rb") as handle:
            size = handle.seek(0, os.SEEK_END)
            handle.seek(max(0, size - limit))
            text = handle.read().decode("utf-8", "replace")
        path.unlink()
    except OSError:
        return ""
    return ("[...cut...]\n" if size > limit else "") + text
