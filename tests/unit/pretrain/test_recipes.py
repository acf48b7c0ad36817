"""The pretraining recipes as a registry (``petlbench.pretrain``): every recipe declares its model, its defaults and
its research options; a short run of each saves a file that loads back through the model's own loader and is
bit-for-bit repeatable; options are recorded; bad input is one line and writes nothing; a recipe registered from
outside the package runs through the same driver."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Annotated

import numpy as np
import pytest
import torch
from torch import nn

from petlbench.config.method_config import Range
from petlbench.errors import UserError
from petlbench.pretrain.base import DEFAULT, RECIPES, Objective, Recipe, RecipeConfig, pretrain, register
from petlbench.pretrain.fashion_mnist import fashion_available
from petlbench.tracks import create_backbone

NAMES = ["fashion-mnist", "scenes", "vl-scenes", "vl-scenes-meter"]
SHORT = dict(steps=2, batch_size=4, held_out=8)


def _short(name: str) -> dict:
    return {**SHORT, **({} if name == "fashion-mnist" else {"pool": 40})}


def test_every_bundled_model_has_its_recipe_and_the_default_is_the_default_backbone():
    from petlbench.models.backbones import BUNDLED, DEFAULT_MODEL
    from petlbench.vl.models import meter, vilt

    assert list(RECIPES.all()) == NAMES
    assert {r.model for r in RECIPES.all().values()} == {*BUNDLED, vilt.MICRO, meter.MICRO}
    assert RECIPES.get(DEFAULT).model == DEFAULT_MODEL
    for r in RECIPES.all().values():
        assert r.description and issubclass(r.Config, RecipeConfig) and r.Config().steps >= 1
        assert all(k not in RecipeConfig.COMMON for k in r.Config().options())


@pytest.mark.heavy
@pytest.mark.parametrize("name", NAMES)
def test_a_short_run_saves_a_repeatable_file_that_the_model_loads(tmp_path, name):
    if name == "fashion-mnist" and not fashion_available():
        pytest.skip("Fashion-MNIST absent: apt-get install dataset-fashion-mnist")
    out = tmp_path / "m.safetensors"
    info = pretrain(name, out, **_short(name))
    pretrain(name, tmp_path / "again.safetensors", **_short(name))
    assert (tmp_path / "again.safetensors").read_bytes() == out.read_bytes()  # the recipe is bit-for-bit repeatable
    recipe = RECIPES.get(name)
    assert info["model"] == recipe.model and info["steps"] == 2 and info["options"] == recipe.Config().options()
    saved = json.loads(out.with_suffix(".json").read_text())
    assert saved["sha256"] == info["sha256"] and saved["torch"] == torch.__version__
    _, loaded, _ = create_backbone(recipe.model, 3, weights=str(out))
    assert loaded["weights_sha256"] == info["sha256"]


@pytest.mark.heavy
def test_research_options_are_set_recorded_and_change_the_weights(tmp_path):
    base = pretrain("vl-scenes-meter", tmp_path / "a.safetensors", **_short("vl-scenes-meter"))
    changed = pretrain("vl-scenes-meter", tmp_path / "b.safetensors", sets=["wpa=0.1", "itm_own_pooler=true"],
                       **_short("vl-scenes-meter"))
    assert changed["options"]["wpa"] == 0.1 and changed["options"]["itm_own_pooler"] is True
    assert base["options"]["wpa"] == 0.0 and base["sha256"] != changed["sha256"]
    from safetensors import safe_open

    def recorded(path) -> dict:
        return json.loads(safe_open(str(path), "pt").metadata()["petlbench"])

    # in the file's own metadata only where they differ from the recipe's defaults (the bundled files keep their bytes)
    assert "options" not in recorded(tmp_path / "a.safetensors")
    assert recorded(tmp_path / "b.safetensors")["options"] == {"wpa": 0.1, "itm_own_pooler": True}


@pytest.mark.parametrize("args, message", [
    (dict(data="vl-scene"), "unknown pretraining recipe 'vl-scene' (did you mean 'vl-scenes'?)"),
    (dict(data="vl-scenes", sets=["wpa=x"]), "bad value 'x' for 'wpa'"),
    (dict(data="vl-scenes", sets=["depth=2"]), "has no config key 'depth'"),
    (dict(data="scenes", steps=0), "steps must be >= 1"),
    (dict(data="scenes", device="cuda"), "vl-scenes / vl-scenes-meter only"),
    (dict(data="vl-scenes", device="gpu"), "unknown device 'gpu'"),
])
def test_bad_input_is_one_line_and_writes_nothing(tmp_path, args, message):
    with pytest.raises(UserError) as e:
        pretrain(out=tmp_path / "m.safetensors", **args)
    assert message in str(e.value) and "\n" not in str(e.value)
    assert not list(tmp_path.iterdir())


def test_another_device_needs_that_device(tmp_path):
    if torch.cuda.is_available():
        pytest.skip("a CUDA device is present")
    with pytest.raises(UserError, match="no CUDA device"):
        pretrain("vl-scenes", tmp_path / "m.safetensors", device="cuda")


def test_the_cli_lists_the_recipes_and_runs_one(cli, tmp_path):
    code, out, _ = cli("list", "recipes")
    assert code == 0 and all(n in out for n in NAMES) and "region_captions" in out
    code, out, err = cli("pretrain", "--data", "scenes", "--out", tmp_path / "s.safetensors", "--steps", "2",
                         "--batch-size", "4", "--held-out", "4", "--set", "pool=8")
    assert code == 0, err
    assert json.loads(out[out.index("{\n"):])["scenes_eval_images"] == 4 and (tmp_path / "s.json").is_file()
    code, _, err = cli("pretrain", "--data", "scenes", "--set", "pool", "--out", tmp_path / "t.safetensors")
    assert code == 2 and "key=value" in err and not (tmp_path / "t.safetensors").exists()


@dataclass(frozen=True)
class _ToyConfig(RecipeConfig):
    steps: Annotated[int, Range(ge=1)] = 3
    width: Annotated[int, Range(ge=1)] = 4  # a research option of the toy recipe


def test_a_recipe_registered_from_outside_runs_through_the_same_driver(tmp_path, monkeypatch):
    """Adding a recipe is one module with ``@register``: nothing else learns its name."""
    monkeypatch.setattr(RECIPES, "_entries", dict(RECIPES._entries))

    @register
    class Toy(Recipe):
        name, model, Config, description = "toy", "toy_model", _ToyConfig, "a linear map fitted to zero"

        def build(self, cfg, device):
            from petlbench.data.preprocess import Preprocess

            return nn.Linear(cfg.width, 1), Preprocess((3, 4, 4), (0.5,) * 3, (0.5,) * 3)

        def objective(self, model, prep, cfg, rng):
            def step(rng: np.random.Generator) -> tuple[torch.Tensor, float]:
                return model(torch.from_numpy(rng.random((cfg.batch_size, cfg.width))).float()).pow(2).mean(), 0.0

            return Objective(model, step, lambda: {"toy_eval": 1.0}, 10, "acc", {"data": "random"})

    info = pretrain("toy", tmp_path / "t.safetensors", sets=["width=6"])
    assert info["model"] == "toy_model" and info["steps"] == 3 and info["options"] == {"width": 6}
    assert info["toy_eval"] == 1.0 and info["arch"] == "Linear"
