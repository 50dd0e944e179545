"""Grade one submission: intake, one sandboxed probe child per part, the judge, the reports.

:func:`grade` writes into ``OUT``: ``results.json`` (Gradescope's autograder format),
``answers.md`` (the written answers for the human grader), ``logs/partN.txt`` (the tail of
each child's stdout/stderr) and ``submission/`` (the extracted files). The run folders of the
children are removed at the end. Its :class:`Grade` says whether the submission could be
graded at all (the command's exit status 0) or not (2).
"""
import ast
import dataclasses
import json
import os
import shutil
import time
import tomllib
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Dict, List, Optional

import torch

from cs236781 import atomic
from cs236781.answers import ANSWER_BLOCK_REPLACEMENT
from cs236781.grading import checks, sandbox
from cs236781.grading.intake import IntakeError, Submission, take_in

DEFAULT_RUBRIC = Path(__file__).with_name("rubric.toml")
PROBE = Path(__file__).with_name("probes") / "probe.py"
GRADER_ROOT = Path(__file__).resolve().parents[2]
NOTEBOOKS = ("Part1_Backprop.ipynb", "Part2_Optimization.ipynb", "Part3_MLP.ipynb",
             "Part4_CNN.ipynb", "Part5_Experiments.ipynb")


class RubricError(ValueError):
    """The rubric file is unreadable or malformed; the message names the file and the key."""


@dataclass
class Item:
    """One line of results.json's ``tests``."""

    number: str
    name: str
    max_score: float
    tag: str
    score: float = 0.0
    output: str = ""
    status: str = "failed"

    def as_json(self) -> dict:
        return {"name": self.name, "number": self.number, "score": round(self.score, 4),
                "max_score": self.max_score, "status": self.status, "output": self.output,
                "tags": [self.tag], "visibility": "visible"}


@dataclass
class Grade:
    """The outcome: ``gradable`` is False when nothing could be graded (exit status 2)."""

    items: List[Item] = field(default_factory=list)
    output: List[str] = field(default_factory=list)
    gradable: bool = True
    ids: List[str] = field(default_factory=list)
    seconds: float = 0.0

    @property
    def score(self) -> float:
        return round(sum(i.score for i in self.items), 4)

    @property
    def max_score(self) -> float:
        return round(sum(i.max_score for i in self.items), 4)

    def __repr__(self):
        return f"Grade({self.score}/{self.max_score}, gradable={self.gradable})"


def load_rubric(path=None) -> dict:
    """The rubric as a dict, checked: every item names a known check, a part 1-5, points >= 0."""
    path = Path(path) if path is not None else DEFAULT_RUBRIC
    try:
        rubric = tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as err:
        raise RubricError(f"rubric {path}: cannot be read ({err})") from None
    items = rubric.get("item")
    if not isinstance(items, list) or not items:
        raise RubricError(f"rubric {path}: expected [[item]] tables, received none")
    for i, item in enumerate(items):
        where = f"rubric {path}: item {i + 1}"
        if item.get("check") not in checks.CHECKS:
            raise RubricError(f"{where}: expected check to be one of {sorted(checks.CHECKS)}, "
                              f"received {item.get('check')!r}")
        if item.get("part") not in checks.PART_INPUTS:
            raise RubricError(f"{where}: expected part 1-5, received {item.get('part')!r}")
        points = item.get("points")
        if isinstance(points, bool) or not isinstance(points, (int, float)) or points < 0:
            raise RubricError(f"{where}: expected points >= 0, received {points!r}")
        for key in ("number", "name"):
            if not isinstance(item.get(key), str):
                raise RubricError(f"{where}: expected a string {key}, received {item.get(key)!r}")
    return rubric


def limits_of(rubric: dict) -> sandbox.Limits:
    lim = rubric.get("limits", {})
    return sandbox.Limits(wall_time=float(lim.get("wall_time", 120)),
                          cpu_time=float(lim.get("cpu_time", 600)),
                          address_space=int(float(lim.get("address_space_gib", 6)) * 2 ** 30),
                          threads=int(lim.get("threads", 2)),
                          processes=int(lim.get("processes", 512)),
                          file_size=int(float(lim.get("output_mib", 256)) * 2 ** 20))


def _part_tag(rubric: dict, part: int) -> str:
    return rubric.get("parts", {}).get(str(part), f"Part {part}")


def _auto_items(rubric: dict) -> Dict[int, List[tuple]]:
    parts: Dict[int, List[tuple]] = {}
    for spec in rubric["item"]:
        item = Item(spec["number"], spec["name"], float(spec["points"]), _part_tag(rubric, spec["part"]))
        parts.setdefault(spec["part"], []).append((spec, item))
    return parts


def _load_cases(run_dir: Path) -> Dict[str, dict]:
    found = {}
    for path in run_dir.glob("case_*.pt"):
        name = path.stem[len("case_"):]
        try:
            found[name] = torch.load(path, map_location="cpu", weights_only=True)
        except Exception as err:  # a file the student's code wrote or damaged: refuse, not crash
            found[name] = {"error": f"the probe's output could not be read ({type(err).__name__})"}
    return found


def _run_part(part: int, sub: Submission, out: Path, limits: sandbox.Limits):
    """Run one part's probe: (cases, failure line or None, log text, the ChildRun)."""
    run_dir = out / "work" / f"part{part}"
    if run_dir.exists():
        shutil.rmtree(run_dir)
    run_dir.mkdir(parents=True)
    torch.save(checks.PART_INPUTS[part](), run_dir / "inputs.pt")
    env = {"HW2_DATASET": "synthetic", "HW2_QUICK": "1"}
    child = sandbox.run_child(PROBE, [str(part), str(run_dir)], student=sub.root, run_dir=run_dir,
                              limits=limits, grader_root=GRADER_ROOT, out=out, env_extra=env)
    failure = child.failure(limits)
    if failure is None and not (run_dir / "done").is_file():
        failure = "the probe did not finish: the student's code ended the process (exit status 0)"
    cases = {} if failure else _load_cases(run_dir)
    log = f"--- stdout ---\n{child.stdout}\n--- stderr ---\n{child.stderr}\n"
    return cases, failure, log, child


def _rerun_notebook(name: str, sub: Submission, out: Path, limits: sandbox.Limits) -> Optional[str]:
    """Re-execute one notebook in quick mode in the sandbox, on a copy of the project in the
    run folder; None when it ran without error outputs, else why not."""
    run_dir = out / "work" / ("nb-" + Path(name).stem)
    if run_dir.exists():
        shutil.rmtree(run_dir)
    shutil.copytree(sub.root, run_dir / "project")
    if os.geteuid() == 0:
        for path in [run_dir, *run_dir.rglob("*")]:
            os.chown(path, sandbox.NOBODY_UID, sandbox.NOBODY_GID)
    env = {"HW2_DATASET": "synthetic", "HW2_QUICK": "1"}
    child = sandbox.run_child(PROBE, ["notebook", str(run_dir), name, str(limits.wall_time)],
                              student=sub.root, run_dir=run_dir, limits=limits,
                              grader_root=GRADER_ROOT, out=out, env_extra=env)
    failure = child.failure(limits)
    report = run_dir / "notebook.json"
    if failure or not report.is_file():
        return failure or "the notebook run wrote no report"
    try:
        found = json.loads(report.read_text(encoding="utf-8"))
        if found.get("errors"):
            return f"{found['errors']} error output(s), first: {found.get('first_error')}"
        return found.get("problem")
    except (ValueError, AttributeError, OSError):
        return "the notebook run's report is unreadable"


def _judge(spec: dict, item: Item, cases: Dict[str, dict], inputs: dict) -> None:
    try:
        verdict = checks.CHECKS[spec["check"]](cases, inputs)
    except checks.CaseError as err:
        item.score, item.status = 0.0, "failed"
        item.output = "The student's code failed:\n" + str(err)
        return
    except Exception as err:  # malformed outputs (wrong types) from the student's code
        item.score, item.status = 0.0, "failed"
        item.output = f"The outputs could not be judged: {type(err).__name__}: {err}"
        return
    item.score = round(item.max_score * verdict.fraction, 4)
    item.status = "passed" if verdict.fraction >= 1.0 else "failed"
    item.output = "\n".join(verdict.lines)


def read_answers(root: Path, names) -> Dict[str, Optional[str]]:
    """The written answers in the student's ``hw2/answers.py``, read with ``ast`` (never
    executed): name -> text, or None when missing or still the hand-out's placeholder."""
    found: Dict[str, Optional[str]] = {name: None for name in names}
    try:
        tree = ast.parse((root / "hw2" / "answers.py").read_text(encoding="utf-8", errors="replace"))
    except (OSError, SyntaxError, ValueError):
        return found
    for node in tree.body:
        if isinstance(node, (ast.Assign, ast.AnnAssign)):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            value = node.value
            for target in targets:
                if isinstance(target, ast.Name) and target.id in found and isinstance(value, ast.Constant) \
                        and isinstance(value.value, str):
                    text = value.value.strip()
                    # What is left once the hand-out's placeholder is taken out.
                    own = text.replace(ANSWER_BLOCK_REPLACEMENT.strip(), "").strip()
                    found[target.id] = text if own else None
    return found


def check_notebook(path: Path) -> Optional[str]:
    """None when the notebook was run (code cells executed, outputs present, no error
    output), else why not."""
    if not path.is_file():
        return "not submitted"
    try:
        nb = json.loads(path.read_text(encoding="utf-8"))
        cells = [c for c in nb.get("cells", []) if c.get("cell_type") == "code" and "".join(c.get("source", "")).strip()]
    except (OSError, ValueError, AttributeError) as err:
        return f"not a readable notebook ({type(err).__name__})"
    if not cells:
        return "has no code cells"
    not_run = sum(1 for c in cells if c.get("execution_count") is None)
    errors = [c for c in cells if any(o.get("output_type") == "error" for o in c.get("outputs", []))]
    if errors:
        first = next(o for o in errors[0]["outputs"] if o.get("output_type") == "error")
        return f"{len(errors)} cell(s) with an error output (first: {first.get('ename')}: {str(first.get('evalue'))[:200]})"
    if not_run:
        return f"{not_run} of {len(cells)} code cell(s) were not run"
    if not any(c.get("outputs") for c in cells):
        return "no cell has outputs"
    return None


def grade(src, out, rubric_path=None, run_notebooks: bool = False,
          progress=None) -> Grade:
    """Grade the submission ``src`` (zip or folder) into the folder ``out``.

    :param rubric_path: A rubric TOML file (default: the committed ``rubric.toml``).
    :param run_notebooks: Also execute the notebooks in quick mode inside the sandbox.
    :param progress: Receives one line per part (None: silent).
    :raises RubricError: For a bad rubric (before anything is written).
    """
    say = progress or (lambda line: None)
    start = time.monotonic()
    rubric = load_rubric(rubric_path)
    out = Path(out).resolve()
    out.mkdir(parents=True, exist_ok=True)
    result = Grade()
    if not sandbox.bwrap_path():
        result.output.append(sandbox.NO_BWRAP_NOTE)
    if sandbox.run_as_note():
        result.output.append(sandbox.run_as_note())
    parts = _auto_items(rubric)
    answer_points = rubric.get("answers", {}).get("points", {})
    try:
        sub = take_in(src, out / "submission")
    except IntakeError as err:
        sub = None
        result.gradable = False
        result.output.append(f"Not graded: {err}")
    if sub is not None:
        result.ids = sub.ids
        if not sub.has_hw2:
            result.gradable = False
            result.output.append("Not graded: the submission has no hw2/ package")
    limits = limits_of(rubric)
    logs = out / "logs"
    runs = {}
    if result.gradable:
        # Parts run side by side (``parallel_parts`` children at once, default 2).
        workers = max(1, int(rubric.get("limits", {}).get("parallel_parts", 2)))
        with ThreadPoolExecutor(max_workers=workers) as pool:
            futures = {part: pool.submit(_run_part, part, sub, out, limits) for part in sorted(parts)}
            runs = {part: f.result() for part, f in futures.items()}
    for part in sorted(parts):
        items = parts[part]
        if not result.gradable:
            for spec, item in items:
                item.output = "not graded: " + result.output[-1]
                result.items.append(item)
            continue
        cases, failure, log, child = runs[part]
        logs.mkdir(exist_ok=True)
        (logs / f"part{part}.txt").write_text(log, encoding="utf-8")
        inputs = checks.PART_INPUTS[part]()
        for spec, item in items:
            if failure:
                item.output = f"Part {part} scored 0: {failure}"
            else:
                _judge(spec, item, cases, inputs)
            result.items.append(item)
        got = sum(i.score for _, i in items)
        say(f"part {part}: {got:g}/{sum(i.max_score for _, i in items):g} in {child.seconds:.1f} s"
            + (f" ({failure})" if failure else ""))
        if failure:
            result.output.append(f"Part {part}: {failure}")
    nb_points = float(rubric.get("notebooks", {}).get("points_each", 0))
    reruns = {}
    if run_notebooks and sub is not None and result.gradable:
        nb_limits = dataclasses.replace(
            limits, wall_time=float(rubric.get("notebooks", {}).get("run_timeout", 900)))
        for name in NOTEBOOKS:
            if (sub.root / name).is_file():
                reruns[name] = _rerun_notebook(name, sub, out, nb_limits)
                say(f"{name} re-run: {reruns[name] or 'no error cells'}")
    for i, name in enumerate(NOTEBOOKS):
        item = Item(f"N.{i + 1}", f"Notebook {name} was run, no error cells", nb_points, "Notebooks")
        problem = check_notebook(sub.root / name) if sub is not None else "not graded"
        item.score, item.status = (nb_points, "passed") if problem is None else (0.0, "failed")
        item.output = "run, outputs present, no error cells" if problem is None else f"{name}: {problem}"
        if name in reruns:
            item.output += "\nre-executed in quick mode: " + (reruns[name] or "no error cells")
            if reruns[name]:
                item.score, item.status = 0.0, "failed"
        result.items.append(item)
    shutil.rmtree(out / "work", ignore_errors=True)
    answers = read_answers(sub.root, answer_points) if sub is not None else {n: None for n in answer_points}
    for name, points in answer_points.items():
        item = Item(f"Q.{name}", f"Written answer {name} (scored by a person)", float(points),
                    "Written answers")
        text = answers.get(name)
        item.status = "passed" if text else "failed"
        item.output = text if text else "MISSING: the answer is empty or still the hand-out's placeholder"
        result.items.append(item)
    result.seconds = time.monotonic() - start
    _write_results(out, result, rubric)
    _write_answers(out, result, answers)
    return result


def _write_results(out: Path, result: Grade, rubric: dict) -> None:
    parts = {}
    for item in result.items:
        entry = parts.setdefault(item.tag, [0.0, 0.0])
        entry[0] += item.score
        entry[1] += item.max_score
    data = {"score": result.score, "max_score": result.max_score,
            "execution_time": round(result.seconds, 2),
            "output": "\n".join(result.output) or "Graded.",
            "visibility": "after_published", "stdout_visibility": "hidden",
            "tests": [i.as_json() for i in result.items],
            "extra_data": {"students": result.ids, "gradable": result.gradable,
                           "parts": {k: {"score": round(v[0], 4), "max_score": v[1]}
                                     for k, v in parts.items()}}}
    with atomic.atomic_write(out / "results.json", "w") as f:
        json.dump(data, f, indent=2, ensure_ascii=False)
        f.write("\n")


def _write_answers(out: Path, result: Grade, answers: Dict[str, Optional[str]]) -> None:
    lines = [f"# Written answers: {', '.join(result.ids) or 'unknown students'}", ""]
    for name, text in answers.items():
        lines += [f"## {name}", "", text if text else "**MISSING** (empty or the hand-out's placeholder)", ""]
    with atomic.atomic_write(out / "answers.md", "w") as f:
        f.write("\n".join(lines))


def table(result: Grade) -> str:
    """The stdout table: each part, each item, the total."""
    rows, current = [], None
    for item in result.items:
        if item.tag != current:
            current = item.tag
            part_items = [i for i in result.items if i.tag == current]
            rows.append(f"{current:<60} {sum(i.score for i in part_items):>6.2f} / "
                        f"{sum(i.max_score for i in part_items):g}")
        mark = "ok " if item.status == "passed" else "-- "
        rows.append(f"  {mark}{item.number:<14} {item.name[:48]:<48} {item.score:>5.2f} / {item.max_score:g}")
    rows.append(f"{'TOTAL':<60} {result.score:>6.2f} / {result.max_score:g}"
                + ("" if result.gradable else "   (NOT GRADABLE)"))
    return "\n".join(rows)
