"""petlbench: benchmark parameter-efficient transfer learning methods."""

__version__ = "0.1.0"
