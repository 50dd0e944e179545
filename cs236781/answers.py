"""Rendering of written answers inside a notebook."""
from IPython.display import Markdown, display


def display_answer(answer: str) -> None:
    """Show a markdown answer (LaTeX allowed) as rich output in the current notebook.

    :param answer: The answer text, markdown with optional ``$...$`` math.
    :raises TypeError: If ``answer`` is not a string.
    """
    if not isinstance(answer, str):
        raise TypeError(f"answer must be a markdown string, got {type(answer).__name__}")
    display(Markdown(answer))
