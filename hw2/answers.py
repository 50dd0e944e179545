"""Hyperparameters and written answers for the notebook questions.

Each part of the assignment owns one section below. Answers are markdown strings (LaTeX
allowed) rendered in the notebooks by :func:`cs236781.answers.display_answer`; the ``*_hp``
functions return the hyperparameter dicts that the notebooks read.
"""

# ==============================================================================
# Part 1: Backpropagation
# ==============================================================================

part1_q1 = r"""
TODO (Part 1)
"""

part1_q2 = r"""
TODO (Part 1)
"""

# ==============================================================================
# Part 2: Optimization and Training
# ==============================================================================

part2_q1 = r"""
TODO (Part 2)
"""

part2_q2 = r"""
TODO (Part 2)
"""

part2_q3 = r"""
TODO (Part 2)
"""

# ==============================================================================
# Part 3: Binary Classification with Multilayer Perceptrons
# ==============================================================================

part3_q1 = r"""
TODO (Part 3)
"""

part3_q2 = r"""
TODO (Part 3)
"""

part3_q3 = r"""
TODO (Part 3)
"""

part3_q4 = r"""
TODO (Part 3)
"""

# ==============================================================================
# Part 4: Convolutional Neural Networks
# ==============================================================================

part4_q1 = r"""
TODO (Part 4)
"""

# ==============================================================================
# Part 5: Convolutional Architecture Experiments
# ==============================================================================

part5_q1 = r"""
TODO (Part 5)
"""

part5_q2 = r"""
TODO (Part 5)
"""

part5_q3 = r"""
TODO (Part 5)
"""

part5_q4 = r"""
TODO (Part 5)
"""

part5_q5 = r"""
TODO (Part 5)
"""
