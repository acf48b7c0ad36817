"""The VL pretraining objective (``petlbench.pretrain.vlp``) and the two micro VL-pretrained models' recipes: the
MLM head's vocabulary, the research options, word-patch alignment, and what each recipe saves."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from petlbench.errors import UserError
from petlbench.pretrain.base import pretrain
from petlbench.pretrain.captions import caption_vocabulary, scene_captions
from petlbench.pretrain.vlp import Pairs, PretrainHeads, VLPConfig, alignment_distance, ipot, mask_tokens
from petlbench.vl.data.raw import tokenizer_for
from petlbench.vl.models.text import OFFLINE_TEXT, text_tokenizer


def test_word_patch_alignment_is_an_optimal_transport_distance_between_words_and_patches():
    """``WPA`` (ViLT's ITM adds 0.1 x this, objectives.compute_itm_wpa; off in the bundled recipe): IPOT's plan has
    the uniform marginals over the words (no [CLS], no final [SEP], no padding) and the patches (no image [class]),
    and words that copy patches are nearer than words that do not."""
    import torch.nn.functional as F

    torch.manual_seed(0)
    t, n, d = 6, 8, 16
    states = torch.randn(3, t + 1 + n, d)
    mask = torch.tensor([[1, 1, 1, 1, 1, 1], [1, 1, 1, 1, 0, 0], [1, 1, 1, 0, 0, 0]])
    words = torch.tensor([[0, 1, 1, 1, 1, 0], [0, 1, 1, 0, 0, 0], [0, 1, 0, 0, 0, 0]], dtype=torch.bool)
    aligned = states.clone()
    for i, w in enumerate(words):  # every patch a copy of a word, each word copied equally often: a zero-cost plan
        ids = w.nonzero().flatten()
        aligned[i, t + 1:] = aligned[i, ids[torch.arange(n) % len(ids)]]
    cost = 1 - F.normalize(states[:, :t], dim=-1) @ F.normalize(states[:, t + 1:], dim=-1).transpose(1, 2)
    plan = ipot(cost, words)
    assert torch.allclose(plan.sum(2), words / words.sum(1, keepdim=True), atol=1e-6)
    assert torch.allclose(plan.sum(1), torch.full((3, n), 1 / n), atol=1e-3)
    assert ipot(cost, torch.zeros_like(words)).abs().sum() == 0  # a caption of special tokens only: no NaN
    assert (alignment_distance(aligned, mask) < 0.05).all() and (alignment_distance(states, mask) > 0.5).all()
    states.requires_grad_(True)
    alignment_distance(states, mask).sum().backward()
    assert states.grad[:, 0].abs().sum() == 0 == states.grad[:, t].abs().sum()  # the image's [class] token: none
    assert states.grad[0, 1:5].abs().sum() > 0 and states.grad[1, 3:t].abs().sum() == 0  # padding: none


def test_the_mlm_head_scores_only_the_caption_words_so_other_rows_keep_their_init():
    from petlbench.vl.models.text import OFFLINE_TEXT, text_tokenizer
    from petlbench.vl.models.vilt import MICRO_SPEC, ViLT

    tok = text_tokenizer(OFFLINE_TEXT)
    texts = ["there are two circles and a square. the square is red.", "a red circle and a blue cross."]
    vocab = caption_vocabulary(texts, tok)
    assert set(tok.convert_ids_to_tokens(vocab.tolist())) == set(
        "there are two circles and a square . the is red circle blue cross".split())
    torch.manual_seed(0)
    model = ViLT(MICRO_SPEC, 2)
    heads = PretrainHeads(model, vocab, MICRO_SPEC.vocab_size, model.text_embeddings.word_embeddings, VLPConfig())
    ids = torch.tensor([tok(texts[0])["input_ids"]] * 50)
    masked, labels = mask_tokens(ids, torch.ones_like(ids), tok, np.random.default_rng(0), vocab)
    assert set(masked[(masked != ids) & (masked != tok.mask_token_id)].tolist()) <= set(vocab.tolist())
    logits = heads.mlm(torch.randn(7, MICRO_SPEC.hidden_size))
    assert logits.shape == (7, len(vocab))
    logits.sum().backward()
    grad = model.text_embeddings.word_embeddings.weight.grad
    touched = grad.abs().sum(1).nonzero().flatten()
    assert torch.equal(touched, vocab)  # "what", "how", "?" get no push-down: they keep their initialisation
    assert torch.equal(heads.index[vocab], torch.arange(len(vocab))) and int(heads.index[tok.mask_token_id]) == -100
    assert int(labels.ne(-100).sum()) > 0


def test_vl_pretraining_can_keep_the_patch_labels_and_give_itm_its_own_pooler():
    """Research options of the VL recipes (ours, off in the bundled ones; docs/vl.md): the scene encoder's patch
    labels as a third loss, ITM reading [CLS] through a pooler of its own, so the model's pooler (what the task heads
    read) gets no gradient in pretraining, and ViLT's word-patch alignment."""
    from petlbench.pretrain.base import RECIPES
    from petlbench.pretrain.vlp import losses

    recipe = RECIPES.get("vl-scenes")
    torch.manual_seed(0)
    model, prep = recipe.build(VLPConfig(), torch.device("cpu"))
    model.eval()  # no dropout: comparable losses
    tok = text_tokenizer(OFFLINE_TEXT)
    pairs = Pairs(*scene_captions(8, seed=3, patch=4), tokenizer_for(OFFLINE_TEXT, model.max_text_len), tok, prep)

    def heads(cfg: VLPConfig) -> PretrainHeads:
        return PretrainHeads(model, caption_vocabulary(pairs.texts, tok), recipe.vocab_size(model), recipe.words(model),
                             cfg)

    both = VLPConfig(patch_loss=1.0, itm_own_pooler=True)
    with_heads, idx = heads(both), np.arange(8)
    loss, acc = losses(model, with_heads, pairs, idx, np.random.default_rng(0), both)
    loss.backward()
    assert set(acc) == {"mlm", "itm", "patch_shape"} and all(0 <= v <= 100 for v in acc.values())
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in with_heads.patches.parameters())
    assert all(p.grad is not None for p in with_heads.itm.parameters())
    assert all(p.grad is None for p in model.pooler.parameters())
    pooler = VLPConfig(itm_own_pooler=True)  # the same batch and heads, no patch labels
    without, _ = losses(model, with_heads, pairs, idx, np.random.default_rng(0), pooler)
    assert without.item() < loss.item()
    wpa = VLPConfig(itm_own_pooler=True, wpa=0.1)  # + word-patch alignment: (mean positive - mean negative) / 10
    with_wpa, _ = losses(model, with_heads, pairs, idx, np.random.default_rng(0), wpa)
    assert with_wpa.item() != without.item() and abs(with_wpa.item() - without.item()) < 0.2


def test_pretraining_the_micro_vlp_model_saves_a_small_file_that_loads_back(tmp_path):
    from safetensors.torch import load_file

    from petlbench.pretrain.base import RECIPES
    from petlbench.vl.models.vilt import MICRO, ROWS, create_vilt

    out = tmp_path / "m.safetensors"
    info = pretrain("vl-scenes", out, steps=2, batch_size=4, pool=40, held_out=8)
    assert info["model"] == MICRO and 0 <= info["eval_itm_acc"] <= 100 and info["lr"] == 5e-4
    saved = load_file(str(out))
    rows = saved[ROWS]
    assert 20 < len(rows) < 1000  # the generated vocabulary (captions and task texts), not 30,522 rows
    model, meta = create_vilt(MICRO, 3, weights=str(out))
    assert meta["weights_source"] == "file:m.safetensors" and model.tokenizer_name == "minilm"
    words = model.text_embeddings.word_embeddings.weight
    assert torch.equal(words[rows], saved["text_embeddings.word_embeddings.weight"])
    unseen = torch.ones(len(words), dtype=torch.bool)
    unseen[rows] = False
    assert not words[unseen].any()  # words the micro model never saw embed to zero
    assert torch.equal(model.state_dict()["transformer.blocks.5.mlp.fc2.weight"], saved["transformer.blocks.5.mlp.fc2.weight"])
    from petlbench.models.backbones import create_backbone

    vit = create_backbone("petl_vit_micro_scenes", 1)[0]  # ViLT starts from a pretrained ViT: the micro one
    built, _ = RECIPES.get("vl-scenes").build(VLPConfig(), torch.device("cpu"))
    assert torch.equal(built.transformer.blocks[0].attn.qkv.weight, vit.blocks[0].attn.qkv.weight)
    with pytest.raises(UserError, match="missing; pass an existing file to --weights"):
        create_vilt(MICRO, 3, weights=str(tmp_path / "missing.safetensors"))


@pytest.mark.heavy
def test_pretraining_the_micro_meter_trains_only_its_fusion_and_saves_only_that(tmp_path):
    from safetensors.torch import load_file

    from petlbench.vl.models.meter import ENCODERS, MICRO, create_meter, micro_meter

    out = tmp_path / "m.safetensors"
    info = pretrain("vl-scenes-meter", out, steps=2, batch_size=4, pool=40, held_out=8)
    assert info["model"] == MICRO and info["arch"] == "METER" and 0 <= info["eval_itm_acc"] <= 100
    saved = load_file(str(out))
    fresh, _ = micro_meter(3)  # the encoders as packaged / bundled, the rest at random
    fusion = {k for k in fresh.state_dict() if not k.startswith((*ENCODERS, "head."))}
    assert set(saved) == fusion  # neither encoder nor a task head is saved
    model, meta = create_meter(MICRO, 3, weights=str(out))
    assert meta["weights_source"].startswith("file:m.safetensors;text=pkg:") and model.tokenizer_name == "minilm"
    state = model.state_dict()
    assert all(torch.equal(state[k], saved[k]) for k in saved)
    for key in ("text_transformer.encoder.layer.5.output.dense.weight", "vit_model.blocks.5.mlp.fc2.weight"):
        assert torch.equal(state[key], fresh.state_dict()[key])  # frozen in pretraining: the encoders as they were
    assert not torch.equal(state["cross_modal_text_layers.0.output.dense.weight"],
                           fresh.state_dict()["cross_modal_text_layers.0.output.dense.weight"])
    assert [n for n, p in model.named_parameters() if p.requires_grad and n.startswith(ENCODERS)] == []
    with pytest.raises(UserError, match="missing; pass an existing file to --weights"):
        create_meter(MICRO, 3, weights=str(tmp_path / "missing.safetensors"))
