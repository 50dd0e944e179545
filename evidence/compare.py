"""Comparing two sets of evidence files value by value."""
import json
from pathlib import Path
from typing import Iterable, List


def differences(new, old, where: str = "") -> List[str]:
    """Every place where two JSON values differ, as ``'path: old -> new'`` lines."""
    if isinstance(new, dict) and isinstance(old, dict):
        lines = []
        for key in sorted(set(new) | set(old)):
            path = f"{where}.{key}" if where else str(key)
            if key not in old:
                lines.append(f"{path}: missing in the committed file")
            elif key not in new:
                lines.append(f"{path}: missing in the rerun")
            else:
                lines += differences(new[key], old[key], path)
        return lines
    if isinstance(new, list) and isinstance(old, list) and len(new) == len(old):
        return [line for i, (a, b) in enumerate(zip(new, old))
                for line in differences(a, b, f"{where}[{i}]")]
    return [] if new == old and type(new) is type(old) else [f"{where}: {old!r} -> {new!r}"]


def compare_folders(new_dir: Path, old_dir: Path, names: Iterable[str]) -> List[str]:
    """Differences between ``new_dir/NAME`` and ``old_dir/NAME`` for each file name."""
    problems = []
    for name in names:
        old = old_dir / name
        if not old.is_file():
            problems.append(f"{name}: not in {old_dir}")
            continue
        new_data = json.loads((new_dir / name).read_text(encoding="utf-8"))
        old_data = json.loads(old.read_text(encoding="utf-8"))
        problems += [f"{name}: {line}" for line in differences(new_data, old_data)]
    return problems
