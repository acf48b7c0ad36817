"""The shared training recipe every method config extends (``MethodConfig``), kept free of torch so the
command line can derive its options (``--lr``, ``--epochs``, ...) without importing torch."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, Any, ClassVar, Literal

from petlbench.config.method_config import Flag, Range

Optimizer = Literal["adamw", "sgd"]  # the loop's optimizers (type alias for configs that change the default)


@dataclass
class MethodConfig:
    """Training recipe every method carries; method configs subclass this and add their keys.

    petlbench's shared VTAB-1k recipe takes its values from NOAH (Zhang et al. 2022, Sec. 4.1; also used by
    AdaptFormer and V-PETL Bench): AdamW, lr 1e-3, weight decay 1e-4, batch 64, 100 epochs with 10 linear
    warm-up epochs, cosine decay. It differs from NOAH's training code in three documented choices of ours:
    the frozen backbone runs in eval mode (NOAH keeps drop-path 0.1 active in it), weight decay applies to
    every trainable tensor (NOAH, through timm's optimizer factory, exempts biases and norm weights), and
    the cosine schedule steps per optimizer step down to 0 (NOAH's timm scheduler steps per epoch down to
    a floor of 1e-8). Every field can be overridden with ``--set key=value`` (or ``--lr``/``--epochs``/...).
    Built-in offline tasks apply a compact epoch budget unless ``epochs`` is set explicitly.
    ``grad_clip`` (max global gradient norm over the trainable parameters, 0 = off) is off in the
    common recipe; keys listed in ``NEUTRAL`` are left out of a run's identity while they hold their
    neutral value, so results stored before the key existed keep their config hash.
    """

    NEUTRAL: ClassVar[dict[str, Any]] = {"grad_clip": 0.0, "adam_beta2": 0.999, "decay": "cosine",
                                          "head_lr_mult": 1.0, "wd_bias_norm": True, "fusion_lr_mult": 1.0,
                                          "classifier_token": False, "randaugment": False}

    optimizer: Optimizer = "adamw"  # adamw | sgd (momentum 0.9)
    lr: Annotated[float, Range(gt=0), Flag("override the recipe's learning rate")] = 1e-3
    weight_decay: Annotated[float, Range(ge=0), Flag("override the recipe's weight decay")] = 1e-4
    epochs: Annotated[int, Range(ge=1), Flag("override the recipe's epochs")] = 100
    warmup_epochs: Annotated[int, Range(ge=0)] = 10
    batch_size: Annotated[int, Range(ge=1), Flag("override the recipe's batch size")] = 64
    # clip the global grad norm of the trainable parameters to this; 0 = off
    grad_clip: Annotated[float, Range(ge=0)] = 0.0
    # The next four are neutral in the shared recipe (torch's AdamW β2, cosine, one lr, decay on every tensor)
    # and exist for recipes that publish otherwise (DVP: ViLT's optimizer, see methods/dvp.py).
    adam_beta2: Annotated[float, Range(gt=0, lt=1)] = 0.999  # AdamW β2 (β1 = 0.9)
    decay: Literal["cosine", "linear"] = "cosine"  # lr decay to 0 after the warm-up, per optimizer step
    # lr multiplier of the classifier head; None = by task (ViLT/DVP configs: ×10 on VQA tasks, ×1 otherwise)
    head_lr_mult: Annotated[float | None, Range(gt=0)] = 1.0
    wd_bias_norm: bool = True  # False: no weight decay on biases and norm weights (every 1-D tensor)
    # lr multiplier of the backbone's cross-modal fusion parameters (``BackboneFamily.fusion_parameters``: METER's
    # co-attention layers, transforms and poolers, with what a method adds inside them); METER: lr_mult_cross_modal
    fusion_lr_mult: Annotated[float, Range(gt=0)] = 1.0
    # a learnable classifier token replaces the first text token (the kind's table: ``Layout.classifier_token``; the
    # official APT code on ViLT and METER, every APT-repo baseline and DAS on METER: ``token4classifier``)
    classifier_token: bool = False
    # RandAugment(2, 9) on the training images, as the official ViLT / METER VQA and SNLI-VE recipes (``*_randaug``,
    # ``clip_randaug``; data.randaugment); VL data only
    randaugment: bool = False

    @classmethod
    def for_task(cls, task: Any, builtin: bool, kind: str | None = None) -> dict[str, Any]:
        """Defaults this method's published recipe sets for ``task`` (the data's ``Task``; ``builtin``: a built-in
        offline task with its compact budget) on a backbone of ``kind`` (None: known only once built), applied
        under the user's keys (``engine.build.resolve_overrides``). The shared recipe has one recipe for every task;
        on a VL-pretrained backbone (ViLT, METER) the official fine-tuning recipe of that backbone
        (``VLP_RECIPES``)."""
        return vlp_recipe(kind, task)


# The official fine-tuning recipes of the VL-pretrained backbones APT and DAS were published on, by (backbone kind,
# published task): each value from the official code. Shared: AdamW betas (0.9, 0.98), eps 1e-8, weight decay 0.01
# except biases and LayerNorms, linear warm-up (10%) then linear decay to 0 (``decay_power = 1``, ``end_lr = 0``).
#   ViLT VQAv2: APT repo ViLT/vilt/config.py ``task_finetune_vqa_randaug`` (its vqa_run.sh): lr 5e-4, lr_mult 10,
#     batch 256, max_epoch 10, warmup_steps 0.1; DAS repo ViLT/vilt/config.py the same but lr 1e-4 (``VLP_LR``).
#     ViLT has no SNLI-VE config: entailment takes the VQA recipe with the task's head multiplier (ours).
#   METER VQAv2: APT / DAS repos METER/meter/config.py ``task_finetune_vqa_clip_bert``: lr 2.5e-5, lr_mult_head 50,
#     lr_mult_cross_modal 5, batch 512, max_epoch 10, warmup 0.1. METER SNLI-VE ``task_finetune_snli_clip_bert``:
#     lr 2e-6, lr_mult_head 10, lr_mult_cross_modal 5, batch 64, max_epoch 5, warmup 0.1.
_VLP_SHARED = {"weight_decay": 0.01, "adam_beta2": 0.98, "decay": "linear", "wd_bias_norm": False,
               "classifier_token": True,  # every APT-repo module and DAS on METER (DAS on ViLT: none, methods/das.py)
               "randaugment": True}  # ViLT task_finetune_vqa_randaug; METER's runs add clip_randaug (its README)
VLP_RECIPES: dict[tuple[str, str], dict[str, Any]] = {
    ("vilt", "vqav2"): {"lr": 5e-4, "head_lr_mult": None, "batch_size": 256, "epochs": 10, "warmup_epochs": 1},
    ("meter", "vqav2"): {"lr": 2.5e-5, "head_lr_mult": 50.0, "fusion_lr_mult": 5.0, "batch_size": 512, "epochs": 10,
                         "warmup_epochs": 1},
    ("meter", "snli-ve"): {"lr": 2e-6, "head_lr_mult": 10.0, "fusion_lr_mult": 5.0, "batch_size": 64, "epochs": 5,
                           "warmup_epochs": 1},  # 10% of 5 epochs: 0.5, rounded up to one epoch (ours)
}


def vlp_recipe(kind: str | None, task: Any, lr: dict[str, float] | None = None) -> dict[str, Any]:
    """The official recipe on a VL-pretrained backbone (``VLP_RECIPES``) for the data's published task (a VQA task
    without one: VQAv2's; on ViLT entailment too), with a method's own lr per backbone (``lr``); {} elsewhere."""
    if kind not in ("vilt", "meter"):
        return {}
    published = getattr(task, "published", None) or "vqav2"
    key = (kind, published if (kind, published) in VLP_RECIPES else "vqav2")
    recipe = {**_VLP_SHARED, **VLP_RECIPES[key]}
    if lr and kind in lr and key[1] == "vqav2":
        recipe["lr"] = lr[kind]
    return recipe
