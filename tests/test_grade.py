"""``python -m cs236781 grade``: the reference, the hand-out, bad zips, hostile code.

The slow tests grade whole submissions in the sandbox (bubblewrap, as the CI set-up installs
it); the attack tests use a one-part rubric with short limits to stay quick.
"""
import hashlib
import json
import os
import stat
import zipfile
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from grading_helpers import ROOT, auto_numbers, copy_reference, mutate, run_grade, zip_folder

from cs236781.grading import grade as grading
from cs236781.grading.intake import IntakeError, check_zip, student_ids

GRADING = ROOT / "cs236781" / "grading"


# ------------------------------------------------------------------ rubric and intake (fast)

def test_default_rubric_totals_100_and_names_known_checks():
    rubric = grading.load_rubric()
    auto = sum(i["points"] for i in rubric["item"])
    notebooks = rubric["notebooks"]["points_each"] * len(grading.NOTEBOOKS)
    answers = sum(rubric["answers"]["points"].values())
    assert auto + notebooks + answers == 100
    assert len({i["number"] for i in rubric["item"]}) == len(rubric["item"])


def test_a_bad_rubric_is_one_line_and_exit_2(tmp_path):
    bad = tmp_path / "rubric.toml"
    bad.write_text('[[item]]\ncheck = "nope"\npart = 1\nnumber = "1"\nname = "x"\npoints = 1\n')
    graded = run_grade(tmp_path, tmp_path / "out", "--rubric", str(bad))
    assert graded.returncode == 2
    assert graded.stderr.strip().count("\n") == 0 and "expected check to be one of" in graded.stderr
    assert not (tmp_path / "out").exists()


def test_student_ids_from_the_name():
    assert student_ids("hw2-123456789_987654321") == ["123456789", "987654321"]
    assert student_ids("hw2-42") == ["42"]
    assert student_ids("whatever") == []


def _zip(path, members):
    """members: (ZipInfo or name, bytes)."""
    with zipfile.ZipFile(path, "w") as zf:
        for info, data in members:
            zf.writestr(info, data)
    return path


def _info(name, mode=None, flag_bits=0):
    info = zipfile.ZipInfo(name)
    if mode is not None:
        info.external_attr = mode << 16
    info.flag_bits |= flag_bits
    return info


def _latin1_name(path):
    """A zip whose member name is Latin-1 bytes without the UTF-8 flag (patched in place:
    Python's zipfile always writes UTF-8)."""
    _zip(path, [("hw2/cafX.py", b"x = 1\n")])
    path.write_bytes(path.read_bytes().replace(b"cafX", b"caf\xe9"))
    return path


def _bad_zips(tmp: Path):
    ok = b"x = 1\n"
    many = [(f"hw2/f{i}.py", b"") for i in range(5001)]
    bomb = tmp / "bomb.zip"
    with zipfile.ZipFile(bomb, "w", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("hw2/big.bin", b"\0" * (201 * 2 ** 20))
    notzip = tmp / "hw2-1.zip"
    notzip.write_bytes(b"this is not a zip")
    return {
        "not a zip": (notzip, "not a zip file"),
        "empty zip": (_zip(tmp / "empty.zip", []), "empty zip"),
        "dot-dot": (_zip(tmp / "dotdot.zip", [("hw2/../../evil.py", ok)]), "outside the submission"),
        "absolute": (_zip(tmp / "abs.zip", [("/tmp/evil.py", ok)]), "absolute path"),
        "symlink": (_zip(tmp / "link.zip", [(_info("hw2/l", stat.S_IFLNK | 0o777), b"/etc/shadow")]),
                    "symbolic link"),
        "device": (_zip(tmp / "dev.zip", [(_info("hw2/d", stat.S_IFCHR | 0o666), b"")]),
                   "device or special file"),
        "non-utf8": (_latin1_name(tmp / "raw.zip"), "not UTF-8"),
        "member count": (_zip(tmp / "many.zip", many), "members (limit"),
        "size bomb": (bomb, "bytes (limit"),
    }


def test_bad_zips_are_refused_from_the_central_directory(tmp_path):
    for label, (path, reason) in _bad_zips(tmp_path).items():
        with pytest.raises(IntakeError, match=reason.replace("(", r"\(")):
            check_zip(path)
            pytest.fail(f"{label} was accepted")


def test_bad_zip_gets_results_json_and_exit_2_writing_nothing_outside_out(tmp_path):
    zips = tmp_path / "zips"
    zips.mkdir()
    cases = _bad_zips(zips)
    before = set(tmp_path.rglob("*"))
    for label, (path, reason) in cases.items():
        out = tmp_path / "out" / path.stem
        result = grading.grade(path, out)
        assert not result.gradable, label
        res = json.loads((out / "results.json").read_text())
        assert res["score"] == 0 and res["extra_data"]["gradable"] is False
        assert reason in res["output"], (label, res["output"])
        assert all(t["score"] == 0 and t["output"] for t in res["tests"])
    outside = {p for p in set(tmp_path.rglob("*")) - before
               if p != tmp_path / "out" and tmp_path / "out" not in p.parents}
    assert outside == set()
    assert not (tmp_path / "evil.py").exists() and not Path("/tmp/evil.py").exists()


@pytest.mark.parametrize("entry", [("-m", "cs236781"), ("main.py",)])
def test_the_command_line_says_not_graded_in_one_line_with_exit_2(tmp_path, entry):
    path = _zip(tmp_path / "hw2-3.zip", [("hw2/../../evil.py", b"x = 1\n")])
    graded = run_grade(path, tmp_path / "out", entry=entry)
    assert graded.returncode == 2
    assert graded.stderr.startswith("error: Not graded:") and graded.stderr.count("\n") == 1
    assert "outside the submission" in graded.results["output"]
    assert "TOTAL" in graded.stdout


def test_zip_without_hw2_is_not_gradable(tmp_path):
    path = _zip(tmp_path / "hw2-5.zip", [("hw2-5/README.md", b"hello")])
    graded = run_grade(path, tmp_path / "out")
    assert graded.returncode == 2
    assert "no hw2/ package" in graded.results["output"]


# ------------------------------------------------------------------ whole submissions (slow)

@pytest.mark.slow
def test_reference_zip_scores_full_marks_on_every_auto_item(tmp_path):
    root = copy_reference(tmp_path / "src")
    answers_before = (root / "hw2" / "answers.py").read_text()
    path = zip_folder(root, tmp_path / "hw2-123456789_987654321.zip", top="hw2-123456789_987654321")
    graded = run_grade(path, tmp_path / "out")
    assert graded.returncode == 0, graded.stderr
    res = graded.results
    for key in ("score", "max_score", "execution_time", "output", "visibility", "stdout_visibility"):
        assert key in res
    assert res["max_score"] == 100
    assert res["extra_data"]["students"] == ["123456789", "987654321"]
    for t in res["tests"]:
        assert set(t) >= {"name", "number", "score", "max_score", "status", "output", "tags", "visibility"}
    for number in auto_numbers(res):
        t = graded.test(number)
        assert t["score"] == t["max_score"] and t["status"] == "passed", t
    answers = [t for t in res["tests"] if t["number"].startswith("Q.")]
    assert len(answers) == 15 and all(t["score"] == 0 and not t["output"].startswith("MISSING") for t in answers)
    assert "Part 4: CNNs and residual networks" in graded.stdout and "TOTAL" in graded.stdout
    md = (tmp_path / "out" / "answers.md").read_text()
    assert "## part5_q5" in md and "MISSING" not in md
    assert (root / "hw2" / "answers.py").read_text() == answers_before
    assert not (tmp_path / "out" / "work").exists()


@pytest.mark.slow
def test_handout_scores_zero_on_every_auto_item(tmp_path):
    from cs236781.dist import prepare_dist

    dist = tmp_path / "dist" / "hw2"
    prepare_dist(source=ROOT, out=dist, progress=None)
    sub = tmp_path / "hw2-7"
    copy_packages = [p for p in ("hw2", "cs236781") if (dist / p).is_dir()]
    sub.mkdir()
    for p in copy_packages:
        os.rename(dist / p, sub / p)
    path = zip_folder(sub, tmp_path / "hw2-7.zip")
    graded = run_grade(path, tmp_path / "out")
    assert graded.returncode == 0, graded.stderr
    scored = {n: graded.test(n)["score"] for n in auto_numbers(graded.results)}
    assert {n: s for n, s in scored.items() if s} == {}
    assert all(t["output"].startswith("MISSING") for t in graded.results["tests"]
               if t["number"].startswith("Q."))


# ------------------------------------------------------------------ attacks (slow)

ONE_PART_RUBRIC = """
[limits]
wall_time = 25
address_space_gib = 4
threads = 1
processes = 64
output_mib = 16
parallel_parts = 1

[[item]]
check = "leakyrelu"
part = 1
number = "1.1"
name = "LeakyReLU forward and backward"
points = 2

[[item]]
check = "sigmoid"
part = 1
number = "1.2"
name = "Sigmoid forward and backward"
points = 2
"""


def _at_import(code):
    def inject(root):
        path = root / "hw2" / "layers.py"
        path.write_text(code + "\n" + path.read_text())
    return inject


def _in_leakyrelu(code):
    def inject(root):
        path = root / "hw2" / "layers.py"
        body = "\n".join("    " + line for line in code.splitlines())
        new = f"def forward(self, x, **kw):\n{body}\n    return ORIG(x, **kw)\n"
        path.write_text(mutate(path.read_text(), "LeakyReLU.forward", new))
    return inject


def _attacks(tmp: Path):
    """name -> (injection, words expected in the part's reason or None, both items 0?)."""
    evil = tmp / "evil-outside.txt"
    grader_file = GRADING / "checks.py"
    return {
        "sys.exit at import": (_at_import("import sys\nsys.exit(3)"), "exited with status 3", True),
        "os._exit mid-test": (_in_leakyrelu("import os\nos._exit(0)"), "did not finish", True),
        "infinite loop": (_at_import("while True:\n    pass"), "wall-time limit", True),
        "fork bomb": (_at_import("import os\nwhile True:\n    try:\n        os.fork()\n    except OSError:\n        pass"),
                      "wall-time limit", True),
        "ctypes segfault": (_at_import("import ctypes\nctypes.string_at(0)"), "segmentation fault", True),
        "50 GiB allocation": (_at_import("import torch\ntorch.ones(50 * 2 ** 30, dtype=torch.uint8)"),
                              None, True),
        "1 GB print": (_at_import("import sys\nfor _ in range(1024):\n    sys.stdout.write('x' * 2 ** 20)"),
                       "File too large", True),  # Python ignores SIGXFSZ: the write fails
        "sleep past the limit": (_at_import("import time\ntime.sleep(3600)"), "wall-time limit", True),
        "socket": (_at_import("import socket\nsocket.create_connection(('1.1.1.1', 80), timeout=5)"),
                   None, True),
        "read /etc/shadow": (_at_import("print(open('/etc/shadow').read())"), None, True),
        "read the grader's files": (_at_import(f"print(open({str(grader_file)!r}).read())"), None, True),
        "write outside the run folder": (_at_import(f"open({str(evil)!r}, 'w').write('pwned')"), None, True),
        "fake results.json and edit grading files": (_at_import(
            "for path in ('../../results.json', 'results.json'):\n"
            "    open(path, 'w').write('{\"score\": 100}')\n"
            f"open({str(GRADING / 'rubric.toml')!r}, 'a').write('# pwned')"), None, True),
        "monkeypatched comparisons and a wrong layer": (_in_leakyrelu(
            "import builtins, sys, types, numpy, torch\n"
            "torch.allclose = lambda *a, **k: True\n"
            "torch.testing.assert_close = lambda *a, **k: None\n"
            "numpy.allclose = lambda *a, **k: True\n"
            "sys.modules['pytest'] = types.ModuleType('pytest')\n"
            "builtins.abs = lambda v: 0\n"
            "return torch.zeros_like(x)"), None, False),
    }


def _grade_attack(tmp: Path, name: str, inject, rubric: Path):
    root = copy_reference(tmp / name.replace(" ", "_").replace("/", "_") / "hw2-9")
    inject(root)
    out = tmp / "outs" / root.parent.name
    return run_grade(root, out, "--rubric", str(rubric), timeout=300), out


def _digest(folder: Path):
    return {p: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(folder.rglob("*")) if p.is_file()
            and "__pycache__" not in p.parts}


@pytest.mark.slow
def test_attacks_score_zero_on_their_part_and_the_grader_finishes(tmp_path):
    rubric = tmp_path / "rubric.toml"
    rubric.write_text(ONE_PART_RUBRIC)
    attacks = _attacks(tmp_path)
    grading_before = _digest(GRADING)
    try:
        shadow = Path("/etc/shadow").read_bytes().strip().splitlines()[0]
    except (OSError, IndexError):
        shadow = b"\0no shadow line\0"
    alone = ["fork bomb"]  # it holds the unprivileged user's process slots while it runs
    with ThreadPoolExecutor(max_workers=2) as pool:
        futures = {name: pool.submit(_grade_attack, tmp_path, name, inj, rubric)
                   for name, (inj, _, _) in attacks.items() if name not in alone}
        graded = {name: f.result() for name, f in futures.items()}
    for name in alone:
        graded[name] = _grade_attack(tmp_path, name, attacks[name][0], rubric)
    for name, (inject, words, both) in attacks.items():
        result, out = graded[name]
        assert result.returncode == 0, (name, result.stderr)
        scores = result.scores()
        if both:
            assert scores["1.1"] == 0 and scores["1.2"] == 0, (name, result.results["output"])
        else:  # only the wrong layer loses; the patched comparisons fool nothing
            assert scores["1.1"] == 0 and scores["1.2"] == 2, (name, scores)
        if words:  # the part's reason (top-level output) or the items' error text
            assert words in json.dumps(result.results), (name, result.results["output"])
        assert result.results["score"] == sum(scores.values())
        for path in out.rglob("*"):
            if path.is_file():
                assert shadow not in path.read_bytes(), (name, path)
    assert not (tmp_path / "evil-outside.txt").exists()
    assert _digest(GRADING) == grading_before
    assert "pwned" not in (GRADING / "rubric.toml").read_text()


# ------------------------------------------------------------------ broken submissions (slow)

@pytest.mark.slow
def test_broken_modules_cost_only_their_items_and_stderr_noise_costs_nothing(tmp_path):
    import ast

    root = copy_reference(tmp_path / "hw2-11")
    (root / "hw2" / "mlp.py").write_text((root / "hw2" / "mlp.py").read_text() + "\ndef broken(:\n")
    optim = root / "hw2" / "optimizers.py"
    tree = ast.parse(optim.read_text())
    tree.body = [n for n in tree.body if not (isinstance(n, ast.ClassDef) and n.name == "RMSProp")]
    optim.write_text(ast.unparse(tree))
    layers = root / "hw2" / "layers.py"
    source = mutate(layers.read_text(), "Sigmoid.forward", "def forward(self):\n    return None\n")
    layers.write_text("import sys, warnings\nwarnings.warn('a noisy library')\n"
                      "print('noise ' * 1000, file=sys.stderr)\n" + source)
    graded = run_grade(root, tmp_path / "out")
    assert graded.returncode == 0, graded.stderr
    scores = graded.scores()
    assert scores["3.1"] == 0 and "SyntaxError" in graded.test("3.1")["output"]
    for number in ("2.5", "2.6"):
        assert scores[number] == 0 and "RMSProp" in graded.test(number)["output"]
    assert scores["1.3"] == 0 and "TypeError" in graded.test("1.3")["output"]
    for number in ("1.1", "1.2", "1.6", "2.1", "2.2", "2.7", "3.2", "3.3"):
        assert graded.test(number)["score"] == graded.test(number)["max_score"], number
    noisy = [t["number"] for t in graded.results["tests"] if "noise noise" in t["output"]]
    assert noisy == [] and "noise noise" not in graded.results["output"]


@pytest.mark.slow
def test_run_notebooks_reexecutes_in_the_sandbox_and_reports_errors(tmp_path):
    from cs236781.dist import prepare_dist

    root = copy_reference(tmp_path / "hw2-12")
    (root / "Part1_Backprop.ipynb").write_bytes((ROOT / "Part1_Backprop.ipynb").read_bytes())
    import shutil
    shutil.copytree(ROOT / "tests" / "assets", root / "tests" / "assets")
    prepare_dist(source=ROOT, out=tmp_path / "dist", progress=None)
    (root / "hw2" / "layers.py").write_bytes((tmp_path / "dist" / "hw2" / "layers.py").read_bytes())
    rubric = tmp_path / "rubric.toml"
    rubric.write_text(ONE_PART_RUBRIC.replace("wall_time = 25", "wall_time = 120"))
    graded = run_grade(root, tmp_path / "out", "--rubric", str(rubric), "--run-notebooks")
    assert graded.returncode == 0, graded.stderr
    nb = graded.test("N.1")["output"]
    assert "re-executed in quick mode:" in nb and "NotImplementedError" in nb
    assert "re-executed" not in graded.test("N.2")["output"]  # not submitted, not run


@pytest.mark.slow
def test_without_bubblewrap_the_limits_still_apply_and_results_say_so(tmp_path):
    from cs236781.grading.sandbox import NO_BWRAP_NOTE

    rubric = tmp_path / "rubric.toml"
    rubric.write_text(ONE_PART_RUBRIC)
    good = copy_reference(tmp_path / "good" / "hw2-13")
    graded = run_grade(good, tmp_path / "out-good", "--rubric", str(rubric),
                       env={"HW2_GRADER_NO_BWRAP": "1"})
    assert graded.returncode == 0, graded.stderr
    assert NO_BWRAP_NOTE in graded.results["output"]
    assert {n: graded.scores()[n] for n in ("1.1", "1.2")} == {"1.1": 2, "1.2": 2}
    slow = copy_reference(tmp_path / "slow" / "hw2-14")
    _at_import("import time\ntime.sleep(3600)")(slow)
    graded = run_grade(slow, tmp_path / "out-slow", "--rubric", str(rubric),
                       env={"HW2_GRADER_NO_BWRAP": "1"})
    assert graded.returncode == 0 and "wall-time limit" in graded.results["output"]
