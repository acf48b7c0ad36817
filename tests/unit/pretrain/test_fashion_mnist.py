"""The Fashion-MNIST recipe (``petlbench.pretrain.fashion_mnist``): without the data it names the package."""

from __future__ import annotations

from pathlib import Path

import pytest

from petlbench.errors import UserError
from petlbench.pretrain.base import pretrain


def test_pretrain_without_fashion_mnist_names_the_package(tmp_path: Path) -> None:
    with pytest.raises(UserError, match="apt-get install dataset-fashion-mnist"):
        pretrain("fashion-mnist", tmp_path / "w.safetensors", steps=1, batch_size=2, sets=[f"data_dir={tmp_path}"])
