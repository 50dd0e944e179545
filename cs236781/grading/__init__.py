"""The course staff's grader (not part of the student hand-out).

- :mod:`~cs236781.grading.grade`: grade one submission (``python -m cs236781 grade``).
- :mod:`~cs236781.grading.intake`: zip/folder intake, checked before extraction.
- :mod:`~cs236781.grading.sandbox`: the child process (bubblewrap, rlimits, ``nobody``).
- ``probes/probe.py``: what the child runs: imports the student's code, computes, writes.
- :mod:`~cs236781.grading.checks`: the judge (inputs and checks per rubric item).
- :mod:`~cs236781.grading.oracles`: plain ``torch.nn`` builds of the Part 4 networks.
- ``rubric.toml``: the default rubric (100 points).
"""
