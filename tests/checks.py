"""Assertions shared by the CLI tests."""

from __future__ import annotations


def one_line_error(code: int, err: str, *words: str) -> None:
    """Exit 2 with a one-line message (no traceback) that contains every one of ``words`` (any case)."""
    assert code == 2, err
    lines = [ln for ln in err.strip().splitlines() if ln.strip()]
    assert len(lines) == 1, err
    assert "Traceback" not in err
    for w in words:
        assert w.lower() in err.lower(), err
