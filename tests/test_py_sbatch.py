"""Tests for py-sbatch.sh, hermetic: every command it can find is one the test put on PATH.

PATH is built from scratch for each run: a folder of links to the few system tools the script
and its job script use (bash, sed, date, ...), plus folders the test fills with fakes: a fake
``sbatch`` that records its arguments and the job script instead of submitting anything, fake
interpreters that print their arguments, and a fake conda installation. Nothing installed on
the machine (a real Slurm client, conda, python3) can change a result, and no job is ever
submitted. The job scripts are then run with bash, the way Slurm would run them.
"""
import os
import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "py-sbatch.sh"
# The system tools py-sbatch.sh and the job script it writes may call.
TOOLS = ("bash", "sed", "cat", "dirname", "mkdir", "date", "hostname")
# Settings of the caller's environment that would change the script's choices.
SETTINGS = ("PYTHON", "CONDA_ENV", "CONDA_HOME", "CONDA_EXE", "DRY_RUN", "JOB_NAME", "NUM_CORES",
            "NUM_GPUS", "PARTITION", "TIME_LIMIT", "MAIL_USER", "MAIL_TYPE", "LOG_DIR")


def _executable(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    path.chmod(0o755)
    return path


def _fake_python(path: Path, label: str) -> Path:
    """A fake interpreter: prints its label, then each argument in <> on its own line."""
    return _executable(path, f"#!/bin/bash\necho 'fake python {label}'\nprintf '<%s>\\n' \"$@\"\n")


class Sandbox:
    """A temporary folder with a PATH of system tools and fakes only.

    ``bin``: the fake ``sbatch`` (records into ``record``); ``tools``: links to :data:`TOOLS`.
    """

    def __init__(self, tmp_path: Path):
        self.root = tmp_path
        self.record = tmp_path / "record"
        self.record.mkdir()
        self.tools = tmp_path / "tools"
        self.tools.mkdir()
        for tool in TOOLS:
            found = shutil.which(tool, path="/usr/bin:/bin")
            assert found, f"system tool {tool} not found in /usr/bin:/bin"
            (self.tools / tool).symlink_to(found)
        self.bin = tmp_path / "bin"
        # The fake sbatch: writes its arguments (one per line) and the job script from stdin.
        _executable(self.bin / "sbatch",
                    '#!/bin/bash\nprintf "%s\\n" "$@" > "$FAKE_RECORD/sbatch-args"\n'
                    'cat > "$FAKE_RECORD/job.sh"\necho "Submitted batch job 4242"\n')
        self.work = tmp_path / "work dir"  # a space in the submission directory, on purpose
        self.work.mkdir()

    def env(self, *path_dirs, **settings) -> dict:
        """The environment of a run: PATH is ``path_dirs`` then the tools, nothing else."""
        env = {k: v for k, v in os.environ.items() if k not in SETTINGS and k != "PATH"}
        env.update(HOME=str(self.root / "home"), FAKE_RECORD=str(self.record),
                   PATH=os.pathsep.join([*map(str, path_dirs), str(self.tools)]))
        env.update({k: str(v) for k, v in settings.items()})
        return env

    def submit(self, *args, path=(), **settings) -> subprocess.CompletedProcess:
        """Run py-sbatch.sh ARGS in the work folder with the fake sbatch first on PATH."""
        return subprocess.run([str(SCRIPT), *args], capture_output=True, text=True,
                              env=self.env(self.bin, *path, **settings), cwd=self.work,
                              timeout=60)

    def submitted(self) -> bool:
        return (self.record / "job.sh").exists()

    def sbatch_args(self) -> list:
        return (self.record / "sbatch-args").read_text().splitlines()

    def run_job(self, *path_dirs) -> subprocess.CompletedProcess:
        """Run the recorded job script as Slurm would: bash, another folder, a job id."""
        env = self.env(*path_dirs, SLURM_JOB_ID="4242")
        return subprocess.run(["bash", str(self.record / "job.sh")], capture_output=True,
                              text=True, env=env, cwd=self.root, timeout=60)


@pytest.fixture
def box(tmp_path):
    return Sandbox(tmp_path)


def _fake_conda(home: Path, env_bin: Path) -> Path:
    """A fake conda installation whose ``conda activate`` records the call and puts
    ``env_bin`` (which holds a fake ``python``) first on PATH."""
    _fake_python(env_bin / "python", "of the conda environment")
    script = home / "etc" / "profile.d" / "conda.sh"
    script.parent.mkdir(parents=True)
    script.write_text(f'conda() {{ echo "conda $*" >> "$FAKE_RECORD/conda-calls"; '
                      f'PATH="{env_bin}:$PATH"; }}\n')
    return home


# -- usage and refusals --------------------------------------------------------------------

def test_without_arguments_prints_usage_and_exits_2_submitting_nothing(box):
    proc = box.submit()
    assert proc.returncode == 2
    assert proc.stdout.startswith("py-sbatch.sh - run one python command") and "Usage" in proc.stdout
    assert not box.submitted()
    helped = box.submit("--help")
    assert helped.returncode == 0 and helped.stdout == proc.stdout


def test_without_sbatch_on_path_exits_2_and_creates_nothing(box):
    venv = box.root / "venv" / "bin"
    _fake_python(venv / "python3", "of the venv")
    env = box.env(venv, LOG_DIR="logs")  # no fake sbatch folder on this PATH
    proc = subprocess.run([str(SCRIPT), "-c", "pass"], capture_output=True, text=True, env=env,
                          cwd=box.work, timeout=60)
    assert proc.returncode == 2
    assert "sbatch not found" in proc.stderr and "DRY_RUN=1" in proc.stderr
    assert not (box.work / "logs").exists()


@pytest.mark.parametrize("settings, message", [
    (dict(PYTHON="/no/such/python"), "PYTHON='/no/such/python' is not an executable"),
    (dict(PYTHON="no-such-python"), "PYTHON='no-such-python' is not an executable"),
    (dict(), "no python3 on PATH"),
    (dict(NUM_CORES="two"), "NUM_CORES must be a positive integer, got 'two'"),
    (dict(NUM_CORES="0"), "NUM_CORES must be a positive integer, got '0'"),
    (dict(NUM_GPUS="-1"), "NUM_GPUS must be an integer >= 0, got '-1'"),
])
def test_bad_settings_exit_2_with_one_message_and_submit_nothing(box, settings, message):
    proc = box.submit("-c", "pass", **settings)  # no python3 on this PATH
    assert proc.returncode == 2
    lines = proc.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"py-sbatch.sh: {message}"), proc.stderr
    assert proc.stdout == "" and not box.submitted()


# -- what is submitted -----------------------------------------------------------------------

def test_dry_run_prints_the_sbatch_command_and_job_script_and_submits_nothing(box):
    python = _fake_python(box.root / "py" / "python", "A")
    proc = box.submit("-m", "hw2.experiments", "run-exp", "-n", "two words", DRY_RUN="1",
                      PYTHON=python, PARTITION="gpu-part", TIME_LIMIT="01:30:00")
    assert proc.returncode == 0, proc.stderr
    assert not box.submitted()
    first, script = proc.stdout.split("\n", 1)
    assert first == ("sbatch --nodes 1 --cpus-per-task 2 --gres gpu:1 --job-name hw2 "
                     "--output logs/slurm-%x-%j.out --partition gpu-part --time 01:30:00")
    assert script.startswith("#!/bin/bash\n")
    assert f"{python} -m hw2.experiments run-exp -n two\\ words" in script
    # The printed script is the one that would be submitted: valid bash that runs the command.
    job = box.record / "job.sh"
    job.write_text(script)
    ran = box.run_job()
    assert ran.returncode == 0, ran.stderr
    assert "<two words>" in ran.stdout


@pytest.mark.parametrize("dry_run", ["", "0"])
def test_dry_run_off_when_empty_or_0(box, dry_run):
    python = _fake_python(box.root / "py" / "python", "A")
    proc = box.submit("-c", "pass", DRY_RUN=dry_run, PYTHON=python)
    assert proc.returncode == 0 and proc.stdout == "Submitted batch job 4242\n"
    assert box.submitted()


def test_course_request_and_settings_reach_sbatch(box):
    python = _fake_python(box.root / "py" / "python", "A")
    proc = box.submit("-c", "pass", PYTHON=python, JOB_NAME="exp 1", NUM_CORES="4",
                      NUM_GPUS="2", PARTITION="p1", TIME_LIMIT="02:00:00",
                      MAIL_USER="ta@example.org", LOG_DIR="my logs")
    assert proc.returncode == 0, proc.stderr
    args = box.sbatch_args()
    expected = {"--nodes": "1", "--cpus-per-task": "4", "--gres": "gpu:2", "--job-name": "exp 1",
                "--output": "my logs/slurm-%x-%j.out", "--partition": "p1",
                "--time": "02:00:00", "--mail-user": "ta@example.org", "--mail-type": "END,FAIL"}
    assert dict(zip(args[::2], args[1::2])) == expected
    assert (box.work / "my logs").is_dir()  # Slurm does not create the log folder itself


def test_defaults_ask_for_two_cores_one_gpu_and_no_partition_or_time(box):
    python = _fake_python(box.root / "py" / "python", "A")
    assert box.submit("-c", "pass", PYTHON=python).returncode == 0
    assert box.sbatch_args() == ["--nodes", "1", "--cpus-per-task", "2", "--gres", "gpu:1",
                                 "--job-name", "hw2", "--output", "logs/slurm-%x-%j.out"]


# -- which python the job runs -----------------------------------------------------------------

def _job_lines(box, proc, *job_path):
    assert proc.returncode == 0, proc.stderr
    ran = box.run_job(*job_path)
    assert ran.returncode == 0, ran.stderr
    return ran.stdout.splitlines()


def test_python_setting_wins_and_runs_with_the_exact_arguments(box):
    python = _fake_python(box.root / "py" / "python", "from PYTHON")
    conda_home = _fake_conda(box.root / "conda", box.root / "conda" / "envs" / "e" / "bin")
    _fake_python(box.root / "venv" / "bin" / "python3", "of the venv")
    args = ["-c", "x", "two words", "it's", "$HOME", "*", ""]
    proc = box.submit(*args, path=[box.root / "venv" / "bin"], PYTHON=python,
                      CONDA_ENV="e", CONDA_HOME=conda_home)
    lines = _job_lines(box, proc)
    assert lines[0].startswith("*** job hw2 (4242) starting on ")
    assert lines[0].endswith(f": python from $PYTHON: {python} ***")
    assert lines[2] == "fake python from PYTHON"
    assert lines[3:3 + len(args)] == [f"<{a}>" for a in args]
    assert lines[-1].startswith("*** job hw2 (4242) done at ")
    assert not (box.record / "conda-calls").exists()


def test_python_given_as_a_name_is_looked_up_on_path_at_submission(box):
    tools = box.root / "mytools"
    python = _fake_python(tools / "mypython", "by name")
    proc = box.submit("-c", "pass", path=[tools], PYTHON="mypython")
    lines = _job_lines(box, proc)  # the job's PATH does not hold mytools
    assert lines[0].endswith(f": python from $PYTHON: {python} ***")
    assert lines[2] == "fake python by name"


def test_python_given_as_a_relative_path_is_taken_from_the_submission_folder(box):
    _fake_python(box.work / "env" / "py", "relative")
    proc = box.submit("-c", "pass", PYTHON="env/py")
    lines = _job_lines(box, proc)
    assert lines[0].endswith(f": python from $PYTHON: {box.work}/env/py ***")
    assert lines[2] == "fake python relative"


@pytest.mark.parametrize("via", ["CONDA_HOME", "CONDA_EXE", "default"])
def test_conda_env_is_activated_when_conda_exists(box, via):
    conda_home = box.root / "home" / "miniconda3" if via == "default" else box.root / "conda"
    env_bin = conda_home / "envs" / "my env" / "bin"
    _fake_conda(conda_home, env_bin)
    _fake_python(box.root / "venv" / "bin" / "python3", "of the venv")
    where = {"CONDA_HOME": dict(CONDA_HOME=conda_home),
             "CONDA_EXE": dict(CONDA_EXE=conda_home / "bin" / "conda"), "default": {}}[via]
    proc = box.submit("-c", "pass", "a b", path=[box.root / "venv" / "bin"],
                      CONDA_ENV="my env", **where)
    lines = _job_lines(box, proc)
    assert lines[0].endswith(f": python from conda environment my env of {conda_home}: python ***")
    assert (box.record / "conda-calls").read_text() == "conda activate my env\n"
    assert lines[2:5] == ["fake python of the conda environment", "<-c>", "<pass>"]
    assert lines[5] == "<a b>"


def test_conda_env_without_conda_falls_back_to_python3_with_a_warning(box):
    venv = box.root / "venv" / "bin"
    python3 = _fake_python(venv / "python3", "of the venv")
    proc = box.submit("-c", "pass", path=[venv], CONDA_ENV="cs236781-hw2",
                      CONDA_HOME=box.root / "no-conda")
    assert "CONDA_ENV=cs236781-hw2 is set but there is no" in proc.stderr
    lines = _job_lines(box, proc)
    assert lines[0].endswith(f": python from python3 on PATH at submission: {python3} ***")
    assert lines[2] == "fake python of the venv"


def test_without_settings_the_python3_on_path_at_submission_runs(box):
    venv = box.root / "venv" / "bin"
    python3 = _fake_python(venv / "python3", "of the venv")
    # conda is installed, but no CONDA_ENV asks for it.
    _fake_conda(box.root / "home" / "miniconda3", box.root / "home" / "miniconda3" / "bin")
    other = box.root / "other" / "bin"
    _fake_python(other / "python3", "on the node's PATH")
    proc = box.submit("-c", "pass", path=[venv])
    assert proc.returncode == 0 and proc.stderr == ""
    lines = _job_lines(box, proc, other)  # the job's PATH has another python3: not used
    assert lines[0].endswith(f": python from python3 on PATH at submission: {python3} ***")
    assert lines[2] == "fake python of the venv"
    assert not (box.record / "conda-calls").exists()


def test_job_runs_in_the_submission_folder(box):
    python = _executable(box.root / "py" / "pwd-python", "#!/bin/bash\necho \"cwd=$PWD\"\n")
    proc = box.submit("-c", "pass", PYTHON=python)
    lines = _job_lines(box, proc)
    assert f"cwd={box.work}" in lines


def test_a_failing_command_fails_the_job(box):
    python = _executable(box.root / "py" / "bad", "#!/bin/bash\necho failing\nexit 3\n")
    assert box.submit("-c", "pass", PYTHON=python).returncode == 0
    ran = box.run_job()
    assert ran.returncode == 3
    assert "failing" in ran.stdout and " done at " not in ran.stdout
