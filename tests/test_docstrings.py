"""Tests for agentstream._docstrings.parse_docstring (table-driven)."""
from __future__ import annotations

import pytest

from agentstream._docstrings import parse_docstring

CASES = [
    pytest.param(None, "", {}, id="none"),
    pytest.param("", "", {}, id="empty"),
    pytest.param("   \n\t  \n", "", {}, id="whitespace-only"),
    pytest.param("Just a summary.", "Just a summary.", {}, id="one-line"),
    pytest.param(
        """Summary line.

        More detail
        over two lines.
        """,
        "Summary line.\n\nMore detail\nover two lines.",
        {},
        id="multi-line-no-params-dedented",
    ),
    pytest.param(
        """Get the weather.

        Args:
            city: The city.
            unit (str, optional): Temperature unit,
                either c or f.
            days (Dict[str, int]): Days.

        Returns:
            The weather as text.
        """,
        "Get the weather.",
        {"city": "The city.", "unit": "Temperature unit, either c or f.", "days": "Days."},
        id="google-args-returns-excluded",
    ),
    pytest.param(
        """Do it.

        Arguments:
            x (dict(str, int)): nested parens in type.
            y:
                description on the next line.

            z (int): after a blank line.
        Raises:
            ValueError: z: not a param.
        """,
        "Do it.",
        {"x": "nested parens in type.", "y": "description on the next line.", "z": "after a blank line."},
        id="google-arguments-raises-excluded",
    ),
    pytest.param(
        """Summary.

        Parameters:
          a: two-space indent
             continued deeper.
          *args: star args.
          **kwargs: star kwargs.
        """,
        "Summary.",
        {"a": "two-space indent continued deeper.", "args": "star args.", "kwargs": "star kwargs."},
        id="google-parameters-stars",
    ),
    pytest.param(
        """Summary.

        Args:
            a: first paragraph.

                second paragraph.
        """,
        "Summary.",
        {"a": "first paragraph.\n\nsecond paragraph."},
        id="google-multi-paragraph",
    ),
    pytest.param(
        """Add numbers.

        Parameters
        ----------
        a : int
            The first
            number.
        b, c : float, optional
            Others.
        flag
            No type given.

        Returns
        -------
        int
            The sum.
        """,
        "Add numbers.",
        {"a": "The first number.", "b": "Others.", "c": "Others.", "flag": "No type given."},
        id="numpy",
    ),
    pytest.param(
        """Summary.

        Notes
        -----
        Some notes.
        """,
        "Summary.",
        {},
        id="numpy-notes-only",
    ),
    pytest.param(
        """Search things.

        :param query: The search
            query text.
        :param int limit: Maximum hits.
        :param Dict[str, int] weights: Weights, see :class:`Foo`.
        :type query: str
        :returns: The hits.
        :raises ValueError: never.
        """,
        "Search things.",
        {"query": "The search query text.", "limit": "Maximum hits.", "weights": "Weights, see :class:`Foo`."},
        id="sphinx",
    ),
    pytest.param(
        """Summary.

        :type x: int
        :rtype: str
        """,
        "Summary.",
        {},
        id="sphinx-type-only-ignored",
    ),
    pytest.param(
        "Summary on first line.\n    Args:\n        x: the x.\n    Returns:\n        y\n",
        "Summary on first line.",
        {"x": "the x."},
        id="first-line-unindented-rest-indented",
    ),
    pytest.param(
        "Summary.\n\n\tArgs:\n\t\tx: tab indented.\n\t\t    more.\n",
        "Summary.",
        {"x": "tab indented. more."},
        id="tabs",
    ),
    pytest.param(
        """
            Leading newline, indented.

            Example:
                >>> f(1)
        """,
        "Leading newline, indented.",
        {},
        id="leading-newline-example-excluded",
    ),
    pytest.param(
        "Note that: this colon line is prose.\nArgs:\n    x: X.",
        "Note that: this colon line is prose.",
        {"x": "X."},
        id="prose-with-colon-is-not-a-section",
    ),
]


@pytest.mark.parametrize("doc, description, params", CASES)
def test_parse_docstring(doc, description, params):
    assert parse_docstring(doc) == (description, params)


def test_text_after_a_section_is_not_description():
    doc = """Summary.

    Returns:
        x
    Trailing prose.
    """
    assert parse_docstring(doc) == ("Summary.", {})
