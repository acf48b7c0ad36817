"""The frozen-backbone mode per backbone family (``--frozen-backbone-mode auto``): VL backbones train with their
language model's dropout active, as the official ViLT / DVP code (a LightningModule in train mode), while the frozen
visual encoder stays in eval; vision backbones keep every frozen module in eval (petlbench's documented choice)."""

from __future__ import annotations

import pytest
from torch import nn

from petlbench import tracks
from petlbench.engine.build import build, frozen_mode, make_method
from petlbench.engine.loop import set_train_mode
from petlbench.registry import METHODS
from petlbench.vl.models.text import DEFAULT_VL_MODEL

VL_METHODS = sorted(n for n, c in METHODS.all().items() if "vl" in tracks.supported_kinds(c.supports))
LM_DROPOUTS = 1 + 6 * 3  # all-MiniLM-L6-v2: the embedding dropout + 3 per layer (attention map, both sublayer outputs)


def active_dropouts(module: nn.Module) -> int:
    return sum(isinstance(m, nn.Dropout) and m.p > 0 and m.training for m in module.modules())


@pytest.fixture(scope="module")
def built_models():
    return {name: build(make_method(name, {"insert_layer": 0} if name == "dvp" else {}), DEFAULT_VL_MODEL, 14)
            for name in VL_METHODS}


@pytest.mark.heavy
@pytest.mark.parametrize("method", VL_METHODS)
def test_every_vl_method_trains_with_the_language_model_dropout_on_and_the_visual_encoder_off(built_models, method):
    built = built_models[method]
    mode = frozen_mode("auto", built)
    assert mode == "train"
    set_train_mode(built.model, mode)
    assert active_dropouts(built.model.text) == LM_DROPOUTS
    assert not any(m.training for m in built.model.vision.modules())
    set_train_mode(built.model, "eval")  # what `auto` resolved to before (and `--frozen-backbone-mode eval` now)
    assert active_dropouts(built.model.text) == 0


def test_vision_backbones_keep_frozen_modules_in_eval():
    built = build(make_method("lora"), None, 10)
    assert frozen_mode("auto", built) == "eval" and frozen_mode("train", built) == "train"
