"""petlbench: benchmark parameter-efficient transfer learning methods."""

__version__ = "0.2.0"  # the one declaration of the version (pyproject reads it)
