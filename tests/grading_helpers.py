"""Submissions for the grader's tests: copies of the reference, mutated by qualified name.

A mutant names a function or method (``"RMSProp.__init__"``, ``"select_roc_thresh"``) of a
module of the student's package and a new definition for it. :func:`mutate` parses the module
with ``ast``, renames the original definition to ``_mutant_orig_<name>`` and puts the new one
after it; the new definition calls the original as ``ORIG(...)``. No line numbers or text
patches: a mutant survives any refactor that keeps the course's public names, and one whose
target is gone raises :class:`MutantTargetMissing`, so its test fails loudly.
"""
import ast
import os
import shutil
import subprocess
import sys
import textwrap
import zipfile
from pathlib import Path
from typing import Dict, Iterable, List, NamedTuple, Optional, Sequence

ROOT = Path(__file__).resolve().parents[1]
#: What a submission copies from the reference (prepare-submission's package folders).
PACKAGES = ("hw2", "cs236781")
_SKIP = {"__pycache__", "grading", ".ipynb_checkpoints"}


class MutantTargetMissing(LookupError):
    """The function or method a mutant names is not in the module."""


class Mutant(NamedTuple):
    """``module`` (e.g. ``hw2/optimizers.py``), ``target`` (qualified name), ``new_def`` (the
    replacement, calling the original as ``ORIG``), ``lost`` (rubric numbers it must lose)."""

    name: str
    module: str
    target: str
    new_def: str
    lost: frozenset


def _find(tree: ast.Module, qualname: str):
    body, node, is_method = tree.body, None, False
    for part in qualname.split("."):
        node = next((n for n in body if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef))
                     and n.name == part), None)
        if node is None:
            raise MutantTargetMissing(f"{qualname}: no {part!r} found")
        parent_body, body = body, node.body
        is_method = is_method or isinstance(node, ast.ClassDef)
    if isinstance(node, ast.ClassDef):
        raise MutantTargetMissing(f"{qualname} is a class, expected a function or method")
    return parent_body, node, is_method


def mutate(source: str, qualname: str, new_def: str) -> str:
    """``source`` with ``qualname`` replaced by ``new_def`` (which may call ``ORIG(...)``)."""
    tree = ast.parse(source)
    parent_body, node, is_method = _find(tree, qualname)
    orig = f"_mutant_orig_{node.name}"
    node.name = orig
    text = textwrap.dedent(new_def).replace("ORIG(", f"self.{orig}(" if is_method else f"{orig}(")
    new_node = ast.parse(text).body[0]
    if not isinstance(new_node, ast.FunctionDef) or new_node.name != qualname.split(".")[-1]:
        raise ValueError(f"new_def must define {qualname.split('.')[-1]}")
    parent_body.insert(parent_body.index(node) + 1, new_node)
    return ast.unparse(tree) + "\n"


def copy_reference(dest: Path) -> Path:
    """The reference's packages (without the grader) copied into ``dest``; returns it."""
    dest.mkdir(parents=True, exist_ok=True)
    for package in PACKAGES:
        shutil.copytree(ROOT / package, dest / package,
                        ignore=lambda d, names: [n for n in names if n in _SKIP or n.endswith(".pyc")])
    return dest


def apply(root: Path, mutants: Iterable[Mutant]) -> None:
    for m in mutants:
        path = root / m.module
        path.write_text(mutate(path.read_text(encoding="utf-8"), m.target, m.new_def), encoding="utf-8")


def zip_folder(folder: Path, zip_path: Path, top: Optional[str] = None) -> Path:
    """Zip ``folder``'s files, under ``top/`` when given (prepare-submission's layout)."""
    with zipfile.ZipFile(zip_path, "w", zipfile.ZIP_DEFLATED) as zf:
        for path in sorted(folder.rglob("*")):
            if path.is_file():
                rel = path.relative_to(folder).as_posix()
                zf.write(path, f"{top}/{rel}" if top else rel)
    return zip_path


class Graded(NamedTuple):
    returncode: int
    stdout: str
    stderr: str
    results: dict

    def scores(self) -> Dict[str, float]:
        return {t["number"]: t["score"] for t in self.results["tests"]}

    def test(self, number: str) -> dict:
        return next(t for t in self.results["tests"] if t["number"] == number)


def run_grade(src: Path, out: Path, *extra: str, entry: Sequence[str] = ("-m", "cs236781"),
              timeout: float = 900, env: Optional[Dict[str, str]] = None) -> Graded:
    """``python -m cs236781 grade SRC -o OUT`` from the repository root, its results.json read."""
    import json

    proc = subprocess.run([sys.executable, *entry, "grade", str(src), "-o", str(out), *extra],
                          cwd=ROOT, capture_output=True, text=True, timeout=timeout,
                          env=None if env is None else {**os.environ, **env})
    results_path = out / "results.json"
    results = json.loads(results_path.read_text(encoding="utf-8")) if results_path.is_file() else {}
    return Graded(proc.returncode, proc.stdout, proc.stderr, results)


def auto_numbers(results: dict) -> List[str]:
    """The rubric numbers of the auto-graded items (not notebooks or written answers)."""
    return [t["number"] for t in results["tests"] if not t["number"].startswith(("N.", "Q."))]
