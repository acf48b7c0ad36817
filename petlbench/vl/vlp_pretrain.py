"""The bundled micro VL-pretrained model ``petl_vilt_micro_scenes``: ViLT's architecture at micro size, pretrained
here with ViLT's objectives on generated scene-caption pairs (``petlbench pretrain --data vl-scenes``).

Why ViLT's architecture (and not METER's): ViLT is one transformer over [text ; patches], so at micro size it is the
bundled micro ViT (``petl_vit_micro_scenes``: 32×32, patch 4, d = 128, 6 blocks) with text embeddings; METER needs
two unimodal encoders plus co-attention layers, three times the parameters for the same width. ViLT also starts
its transformer from a pretrained ViT (Kim et al. 2021, Sec. 3.3: ViT-B/32 from ImageNet); here from the
scene-pretrained micro ViT, so the VL pretraining only has to learn language and its binding to the image.

Data: captions of generated scenes drawn from their own seed stream (``CAPTION_STREAM``; disjoint from the task
splits' and the encoder pretraining's), in the words a caption uses: one sentence about the whole scene (every object
by colour and shape, or how many of each shape), then one true fact about an object named uniquely (its colour, its
shape, or a spatial relation with centres at least ``MARGIN`` apart), e.g. "there are two circles and a square. the
square is red." Never a question: the question words ("what", "how many", "is there") are learned in fine-tuning,
as with ViLT's caption corpora and VQA.

Objectives (ViLT's, Sec. 3.2): masked language modelling (15% of the caption's tokens, BERT's 80/10/10 replacement,
predicted by ViLT's MLM head tied to the word embeddings; the softmax over the captions' words only, see
``PretrainHeads``) on the true pairs, and image-text matching (the caption replaced by another scene's with
probability 0.5, a linear head on the pooled [CLS]) in a second forward; the loss is their sum. Both heads are
dropped after pretraining. Recipe (ours; in the JSON): the loop's pretraining ``fit`` as for the micro ViTs (AdamW,
weight decay 0.05, 5% warm-up, cosine), lr 5e-4, batch 64, 1,500 steps.

Two options of ours, off in the bundled recipe (measured in docs/vl.md: together +0.9 points of full fine-tuning
on shapes-vqa over three pretraining runs each, still below the PLM pair):

* ``PATCH_LOSS`` > 0: the scene encoder's objective is kept as a third loss (× the weight): the true pairs' patch
  tokens predict their object's shape, colour and centre (``vl.tasks.patch_labels``, the labels
  ``petl_vit_micro_scenes`` was trained with; a linear head each). ITM + MLM alone wipe out the patch tokens' shape
  information (``benchmarks/perf/vlp_patch_probe.py``: a linear probe at the last layer, 98.0% before, 45.4% after).
* ``ITM_OWN_POOLER``: ITM reads [CLS] through a pooler of its own, dropped with the heads, so the model's pooler
  (which ViLT's task heads read) is saved as initialised. Trained by ITM, its output drifts towards one direction
  common to every input, and fine-tuning from a model with better matching starts more stuck at the answer prior.

Two more, also off (measured in docs/vl.md):

* ``WPA`` > 0: ViLT's ITM also has word-patch alignment (Sec. 3.2; ``objectives.compute_itm_wpa`` adds 0.1 × it):
  the optimal-transport distance between the text and patch tokens (IPOT, UNITER's β = 0.5, 50 iterations) is pulled
  down on true pairs and pushed up on false ones. The bundled model was pretrained without it (ITM alone).
* ``REGION_CAPTIONS`` > 0: that share of the captions are region descriptions, as Visual Genome's, one of ViLT's four
  corpora ("a red circle.", "two circles.", "a red circle left of a blue square."); an ITM negative that happens to be
  true of the image is redrawn (``true_regions``).

ITM negatives: ViLT replaces the image (``false_image_0``), here the caption (another scene's), with the same 0.5.

The micro METER (``vl.meter``, ``petlbench pretrain --data vl-scenes-meter``, ``arch="meter"``) pretrains the same
way (captions, masking, ITM negatives, loop and recipe) with METER's heads: MLM through a transform and a decoder of
its own (METER's ``MLMHead`` is not tied; here too the softmax covers the captions' words), ITM as Linear(2d, 2) on both
poolers (``ITMHead(hidden * 2)``). Its two encoders are frozen (ours), so only the co-attention layers, transforms,
poolers and modality embedding learn, and only they are saved. ``model.forward_features`` gives both models' states
in one layout, [text ; image class token ; patches], so the objectives are written once.

Saved (ViLT): the backbone without its head; of the word embeddings only the rows of the generated vocabulary (pretraining
captions and the built-in VL tasks' texts; the others are zero when loaded), so the file stays small.
"""

from __future__ import annotations

import zlib
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from petlbench.vl.meter import ENCODERS, METER, MICRO_VISION, micro_meter
from petlbench.vl.vilt import MICRO_SPEC as SPEC
from petlbench.vl.vilt import ROWS, Pooler, ViLT

CAPTION_STREAM = 17  # task splits: 11, encoder pretraining scenes: 13
PAIRS_EVAL = 1_000  # held-out pairs (the pool size is ``petlbench pretrain``'s scene count, 40,000)
MASK_PROB = 0.15
PATCH_LOSS = 0.0  # weight of the scene encoder's per-patch label loss kept during VL pretraining (ours; 0 = off)
ITM_OWN_POOLER = False  # the ITM head has its own pooler (dropped after pretraining) instead of the model's (ours)
WPA = 0.0  # weight of ViLT's word-patch alignment added to ITM (ViLT: 0.1, objectives.compute_itm_wpa; 0 = off)
IPOT_BETA, IPOT_ITERATIONS = 0.5, 50  # UNITER's, as ViLT's compute_itm_wpa (Kim et al. 2021, Sec. 3.2)
REGION_CAPTIONS = 0.0  # share of captions that are region descriptions, as Visual Genome's (ours; 0 = off)


NUMBERS = ("no", "a", "two", "three", "four", "five")  # a scene has 2-5 objects (vl.tasks.sample_scene)


def caption(scene: list, rng: np.random.Generator) -> str:
    """One sentence about the whole scene (half the time every object by colour and shape in random order, half
    the time how many of each shape), then one fact about a named object when the scene has one (``_facts``)."""
    from petlbench.vl.tasks import PLURAL

    if REGION_CAPTIONS and rng.random() < REGION_CAPTIONS:
        return region(scene, rng)
    if rng.random() < 0.5:
        first = _series([f"a {scene[i].colour} {scene[i].shape}" for i in rng.permutation(len(scene))])
    else:
        counts = {s: sum(o.shape == s for o in scene) for s in dict.fromkeys(o.shape for o in scene)}
        shapes = [list(counts)[i] for i in rng.permutation(len(counts))]
        first = ("there is " if counts[shapes[0]] == 1 else "there are ") + _series(
            [f"{NUMBERS[counts[s]]} {s if counts[s] == 1 else PLURAL[s]}" for s in shapes])
    kinds = [k for k in _facts(scene, rng) if k]
    if not kinds:
        return first + "."
    facts = kinds[rng.integers(len(kinds))]
    return f"{first}. {facts[rng.integers(len(facts))]}"


def region(scene: list, rng: np.random.Generator) -> str:
    """A region description, as Visual Genome's (one of ViLT's four pretraining corpora): a phrase about part of
    the scene, of one kind drawn uniformly among those the scene has: one object ("a red circle."), how many of a
    shape there are when at least two ("two circles."), or two objects in a relation whose centres are at least
    ``vl.tasks.MARGIN`` apart on that axis ("a red circle left of a blue square.")."""
    from petlbench.vl.tasks import RELATIONS, _relation

    objects = [f"{_a(o)}." for o in scene]
    counts = [_how_many(scene, s) for s in dict.fromkeys(o.shape for o in scene)
              if sum(o.shape == s for o in scene) >= 2]
    relations = [f"{_a(a)} {rel} {_a(b)}." for a in scene for b in scene if a is not b for rel in RELATIONS
                 if _relation(a, b, rel)]
    kinds = [k for k in (objects, counts, relations) if k]
    phrases = kinds[rng.integers(len(kinds))]
    return phrases[rng.integers(len(phrases))]


def _a(o) -> str:
    return f"a {o.colour} {o.shape}"


def _how_many(scene: list, shape: str) -> str:
    from petlbench.vl.tasks import PLURAL

    return f"{NUMBERS[sum(o.shape == shape for o in scene)]} {PLURAL[shape]}."


def true_regions(scene: list) -> frozenset[str]:
    """Every region description (``region``'s forms) true of ``scene``, relations at any distance: an ITM
    negative that is one of them is redrawn (a random corpus caption describing the image is rare; a random phrase
    about part of a generated scene often does)."""
    from petlbench.vl.tasks import RELATIONS

    facts = {f"{_a(o)}." for o in scene}
    facts |= {_how_many(scene, o.shape) for o in scene}
    for a, b in ((a, b) for a in scene for b in scene if a is not b):
        dx, dy = a.x - b.x, a.y - b.y
        facts |= {f"{_a(a)} {rel} {_a(b)}." for rel, holds in zip(RELATIONS, (dx < 0, dx > 0, dy < 0, dy > 0),
                                                                   strict=True) if holds}
    return frozenset(facts)


def _series(parts: list[str]) -> str:
    return (", ".join(parts[:-1]) + " and " + parts[-1]) if len(parts) > 1 else parts[0]


def _facts(scene: list, rng: np.random.Generator) -> tuple[list[str], list[str], list[str]]:
    """The true facts a caption may add, by kind: the colour of each shape present once ("the circle is red."),
    the shape of each colour present once ("the red object is a circle."), and one spatial relation between two
    objects each named by its shortest unique name ("the circle" or "the red circle") whose centres are at least
    ``MARGIN`` apart on that axis, when such a pair exists (up to 4 pairs tried)."""
    from petlbench.vl.tasks import MARGIN

    def once(key) -> list:
        return [o for o in scene if sum(key(p) == key(o) for p in scene) == 1]

    colour = [f"the {o.shape} is {o.colour}." for o in once(lambda o: o.shape)]
    shape = [f"the {o.colour} object is a {o.shape}." for o in once(lambda o: o.colour)]
    names = {id(o): o.shape for o in once(lambda o: o.shape)}
    names.update({id(o): f"{o.colour} {o.shape}" for o in once(lambda o: (o.colour, o.shape)) if id(o) not in names})
    pairs = [(a, b) for a in scene for b in scene if a is not b and id(a) in names and id(b) in names]
    relation: list[str] = []
    for k in rng.permutation(len(pairs))[:4]:
        a, b = pairs[k]
        horizontal = bool(rng.random() < 0.5)
        d = (a.x - b.x) if horizontal else (a.y - b.y)
        if abs(d) >= MARGIN:
            rel = ("left of" if d < 0 else "right of") if horizontal else ("above" if d < 0 else "below")
            relation = [f"the {names[id(a)]} is {rel} the {names[id(b)]}."]
            break
    return colour, shape, relation


def scene_captions(n: int, seed: int) -> tuple[np.ndarray, list[str], np.ndarray, list[frozenset[str]]]:
    """(uint8 n×32×32×3 images, n captions, int64 n×3×8×8 patch labels as ``vl.tasks.patch_labels``, each scene's
    ``true_regions``) from the caption seed stream."""
    from petlbench.vl.tasks import patch_labels, render_with_covers, sample_scene

    rng = np.random.default_rng([zlib.crc32(b"vlp-captions"), seed, CAPTION_STREAM])
    images, texts, labels, truths = [], [], [], []
    for _ in range(n):
        scene = sample_scene(rng)
        image, covers = render_with_covers(scene, rng)
        images.append(image)
        labels.append(patch_labels(scene, covers, SPEC.patch_size))
        texts.append(caption(scene, rng))
        truths.append(true_regions(scene))
    return np.stack(images), texts, np.stack(labels), truths


class PretrainHeads(nn.Module):
    """ViLT's MLM head (dense + GELU + LayerNorm, decoder tied to the word embeddings, own bias) and ITM head. The
    MLM softmax runs over ``vocab`` (the pretraining captions' word ids; ours): with all 30,522 rows every word the
    captions never use (the questions' "what", "how", "many") gets only the softmax's push-down, and those rows
    collapse onto one direction (measured on the first bundled model: cosine 0.8-0.9 between "what", "color",
    "circles", "?"), so fine-tuning starts unable to tell the questions apart. Rows outside ``vocab`` keep their
    initialisation (N(0, 0.02), as ViLT's text embeddings)."""

    def __init__(self, model: ViLT | METER, vocab: torch.Tensor) -> None:
        super().__init__()
        d, self.tied = model.spec.hidden_size, model.kind == "vilt"
        self.transform = nn.Sequential(nn.Linear(d, d), nn.GELU(), nn.LayerNorm(d, eps=model.spec.layer_norm_eps))
        if self.tied:
            self.bias = nn.Parameter(torch.zeros(len(vocab)))
        else:  # METER's MLM head has a decoder of its own (its word embeddings are the frozen text encoder's)
            self.decoder = nn.Linear(d, len(vocab))
        pooled = d if self.tied else 2 * d  # METER's ITM head reads both poolers (official ITMHead(hidden * 2))
        self.itm = nn.Sequential(Pooler(d), nn.Linear(d, 2)) if ITM_OWN_POOLER else nn.Linear(pooled, 2)
        if PATCH_LOSS:
            from petlbench.vl.tasks import LABEL_HEADS

            self.patches = nn.ModuleList(nn.Linear(d, k) for k in LABEL_HEADS.values())
        if self.tied:
            self.words = model.text_embeddings.word_embeddings  # tied, not owned
        self.register_buffer("vocab", vocab, persistent=False)
        index = torch.full((_vocab_size(model),), -100, dtype=torch.long)
        index[vocab] = torch.arange(len(vocab))
        self.register_buffer("index", index, persistent=False)  # word id -> position in ``vocab``

    def mlm(self, text_states: torch.Tensor) -> torch.Tensor:
        """Logits over ``vocab``; ``self.index[ids]`` are the matching targets."""
        if not self.tied:
            return self.decoder(self.transform(text_states))
        return self.transform(text_states) @ self.words.weight[self.vocab].t() + self.bias


def _vocab_size(model: ViLT | METER) -> int:
    return model.spec.vocab_size if model.kind == "vilt" else int(model.text_transformer.config.vocab_size)


def caption_vocabulary(texts: list[str], tokenizer: Any) -> torch.Tensor:
    """The sorted word ids of ``texts`` (no special tokens): what the MLM head predicts and random-replaces with."""
    ids = {i for t in sorted(set(texts)) for i in tokenizer(t)["input_ids"]}
    return torch.tensor(sorted(ids - set(tokenizer.all_special_ids)), dtype=torch.long)


def mask_tokens(ids: torch.Tensor, attn: torch.Tensor, tokenizer: Any, rng: np.random.Generator,
                vocab: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(masked ids, labels with -100 where not predicted): BERT's 15% with 80% [MASK], 10% a random word of
    ``vocab``, 10% kept."""
    special = torch.as_tensor(np.isin(ids.numpy(), tokenizer.all_special_ids))
    u = torch.from_numpy(rng.random(tuple(ids.shape)))
    chosen = (u < MASK_PROB) & attn.bool() & ~special
    labels = torch.where(chosen, ids, torch.full_like(ids, -100))
    r = torch.from_numpy(rng.random(tuple(ids.shape)))
    out = ids.clone()
    out[chosen & (r < 0.8)] = tokenizer.mask_token_id
    rand = chosen & (r >= 0.8) & (r < 0.9)
    out[rand] = vocab[torch.from_numpy(rng.integers(0, len(vocab), int(rand.sum())))]
    return out, labels


def _batch(texts: list[str], tokenize, images: np.ndarray, prep) -> dict[str, torch.Tensor]:
    return {**tokenize(texts), "pixel_values": prep(images)}


def _on(batch: dict[str, torch.Tensor], device: torch.device) -> dict[str, torch.Tensor]:
    return {k: v.to(device) for k, v in batch.items()}


def _losses(model: ViLT | METER, heads: PretrainHeads, images: np.ndarray, texts: list[str], others: list[str],
            tokenize, tokenizer, prep, rng: np.random.Generator,
            patch_labels: np.ndarray | None = None) -> tuple[torch.Tensor, dict[str, float]]:
    """(the summed loss, accuracies %) on one batch: MLM on the true pairs, ITM against ``others`` (a caption of
    another scene per sample), and with ``patch_labels`` and ``PATCH_LOSS`` the patch-label loss × ``PATCH_LOSS``
    on the true pairs' patch tokens (accuracy: the shape head's, on the patches an object covers)."""
    dev = heads.vocab.device  # the model's; batches are built and masked on the CPU
    true = _batch(texts, tokenize, images, prep)
    ids, labels = mask_tokens(true["input_ids"], true["attention_mask"], tokenizer, rng, heads.vocab.cpu())
    t, labels = ids.shape[1], labels.to(dev)
    hidden = model.forward_features(_on({**true, "input_ids": ids}, dev))
    chosen = labels != -100
    logits, target = heads.mlm(hidden[:, :t][chosen]), heads.index[labels[chosen]]  # only masked positions scored
    loss = F.cross_entropy(logits, target)
    acc = {"mlm": 100.0 * (logits.argmax(-1) == target).float().mean().item() if len(target) else 0.0}
    if PATCH_LOSS and patch_labels is not None:
        y = torch.from_numpy(patch_labels).flatten(2).to(dev)  # B×3×G², in LABEL_HEADS order
        out = [h(hidden[:, t + 1:]) for h in heads.patches]  # the patch tokens, after the image's [class] token
        loss = loss + PATCH_LOSS * sum(F.cross_entropy(o.flatten(0, 1), y[:, i].flatten()) for i, o in enumerate(out))
        obj = y[:, 0] > 0
        acc["patch_shape"] = 100.0 * (out[0].argmax(-1)[obj] == y[:, 0][obj]).float().mean().item()
    match = torch.from_numpy(rng.random(len(texts)) >= 0.5)
    mixed = [a if m else b for a, b, m in zip(texts, others, match.tolist(), strict=True)]
    pair, match = _on(_batch(mixed, tokenize, images, prep), dev), match.to(dev)
    states = model.forward_features(pair)
    itm_logits = heads.itm(states[:, 0] if ITM_OWN_POOLER else model.pool(states, pair["input_ids"].shape[1]))
    acc["itm"] = 100.0 * (itm_logits.argmax(-1) == match.long()).float().mean().item()
    loss = loss + F.cross_entropy(itm_logits, match.long())
    if WPA:
        distance = alignment_distance(states, pair["attention_mask"])
        loss = loss + WPA * (distance[match].sum() - distance[~match].sum()) / len(distance)
    return loss, acc


def alignment_distance(states: torch.Tensor, text_mask: torch.Tensor) -> torch.Tensor:
    """ViLT's word-patch alignment distance per pair (``compute_itm_wpa``): the optimal-transport cost, by IPOT
    (Xie et al. 2018; the plan computed without gradient), between the text tokens (without [CLS] and the final
    [SEP]) and the patch tokens (without the image's [class] token) under cosine distance, each side uniform."""
    t = text_mask.shape[1]
    words = text_mask.bool().clone()
    words[torch.arange(len(words)), words.sum(1) - 1] = False
    words[:, 0] = False
    cost = 1 - F.normalize(states[:, :t].float(), dim=-1) @ F.normalize(states[:, t + 1:].float(), dim=-1).transpose(1, 2)
    plan = _ipot(cost.detach(), words)
    return (cost * plan).sum((1, 2))


@torch.no_grad()
def _ipot(cost: torch.Tensor, words: torch.Tensor) -> torch.Tensor:
    """The IPOT transport plan (B×M×N) between ``words`` (B×M valid text positions, mass 1/m each) and all N
    patches (mass 1/N each): proximal point iterations with one Sinkhorn step each, as ViLT's ``ipot``."""
    m, n = words.sum(1, keepdim=True).clamp_min(1).to(cost.dtype), cost.shape[2]  # no words: an all-zero plan
    kernel = torch.exp(-cost / IPOT_BETA) * words[:, :, None]
    plan, sigma = torch.ones_like(cost) * words[:, :, None], words.to(cost.dtype) / m
    for _ in range(IPOT_ITERATIONS):
        q = kernel * plan
        delta = 1 / (n * (q * sigma[:, :, None]).sum(1)).clamp_min(1e-30)  # B×N
        sigma = torch.where(words, 1 / (m * (q * delta[:, None, :]).sum(2)).clamp_min(1e-30), 0)
        plan = sigma[:, :, None] * q * delta[:, None, :]
    return plan


def _others(n: int, idx: np.ndarray, rng: np.random.Generator, texts: list[str],
            truths: list[frozenset[str]]) -> np.ndarray:
    """For each index another index of the pool (the ITM negative's caption), redrawn while its caption is a region
    description true of the index's scene (never the case without ``REGION_CAPTIONS``: no extra draws)."""
    other = (idx + rng.integers(1, n, len(idx))) % n
    while bad := [k for k, (i, j) in enumerate(zip(idx, other, strict=True)) if texts[j] in truths[i]]:
        other[bad] = (idx[bad] + rng.integers(1, n, len(bad))) % n
    return other


def build_model(seed: int = 0, arch: str = "vilt") -> ViLT | METER:
    """The micro ViLT, its transformer from the bundled scene-pretrained micro ViT (ViLT starts from a ViT); or
    (``arch="meter"``) the micro METER on the offline pair's encoders, frozen: only the rest pretrains."""
    from petlbench.models.backbones import create_backbone

    torch.manual_seed(seed)
    if arch == "meter":
        model, _ = micro_meter(1)
        for part in (model.text_transformer, model.vit_model, model.head):  # the encoders frozen; no task head
            part.requires_grad_(False)
        return model
    model = ViLT(SPEC, 1)
    vit, _ = create_backbone("petl_vit_micro_scenes", 1)
    own = model.transformer.state_dict()
    model.transformer.load_state_dict({k: v for k, v in vit.state_dict().items() if k in own and
                                       not k.startswith("head")}, strict=False)
    return model


def run(steps: int, batch_size: int, lr: float, rng: np.random.Generator, reporter, seed: int,
        n_pairs: int, eval_pairs: int, train, device: torch.device,
        arch: str = "vilt") -> tuple[ViLT | METER, Any, dict[str, Any], dict[str, torch.Tensor]]:
    """Pretrain the micro ``arch`` (see the module docstring) with ``train`` (the pretraining loop,
    ``engine.pretrain._train``, passed in so this module does not import the engine) on ``device``; the model, its
    image preprocessing (from its data config), its facts / held-out scores, and the state to save
    (``compact_state``; METER: all but the encoders)."""
    from petlbench.data.preprocess import Preprocess
    from petlbench.vl.data import tokenizer_for
    from petlbench.vl.text import OFFLINE_TEXT, text_tokenizer

    model = build_model(seed, arch).to(device)
    cfg = model.data_config()
    prep = Preprocess(cfg["input_size"], cfg["mean"], cfg["std"])
    tokenize, tokenizer = tokenizer_for(OFFLINE_TEXT, model.max_text_len), text_tokenizer(OFFLINE_TEXT)
    images, texts, patch_labels, truths = scene_captions(n_pairs, seed)
    heads = PretrainHeads(model, caption_vocabulary(texts, tokenizer)).to(device)

    def objective(rng: np.random.Generator) -> tuple[torch.Tensor, float]:
        idx = rng.integers(0, n_pairs, batch_size)
        other = _others(n_pairs, idx, rng, texts, truths)
        loss, acc = _losses(model, heads, images[idx], [texts[i] for i in idx], [texts[i] for i in other],
                            tokenize, tokenizer, prep, rng, patch_labels[idx])
        return loss, acc["itm"]

    loss, acc = train(nn.ModuleList([model, heads]), objective, steps, lr, rng, reporter, batch_size)
    scores = evaluate(model, heads, scene_captions(eval_pairs, seed + 1), tokenize, tokenizer, prep, seed)
    own_pooler = ", its own pooler" if ITM_OWN_POOLER else ""
    patches = f" + {PATCH_LOSS} x the scene encoder's patch labels" if PATCH_LOSS else ""
    facts = {"epochs": round(steps * batch_size / n_pairs, 2), "final_train_loss_ema": round(loss, 4),
             "final_train_itm_acc_ema": round(acc, 2), **scores,
             "objectives": f"masked language modelling (15%, 80/10/10) + image-text matching (p = 0.5{own_pooler})"
                           f"{patches}",
             "init": INIT[arch] + ("; the pooler is saved as initialised (no pretraining gradient)"
                                   if ITM_OWN_POOLER else ""),
             "data": f"{n_pairs} generated scene-caption pairs (vl.vlp_pretrain.scene_captions, seed {seed}, "
                     f"stream {CAPTION_STREAM}; disjoint from the VL task splits)"
                     + (f"; {REGION_CAPTIONS:.0%} of the captions region descriptions" if REGION_CAPTIONS else "")}
    if arch == "meter":
        state = {k: v.detach().cpu().contiguous().clone() for k, v in model.state_dict().items()
                 if not k.startswith((*ENCODERS, "head."))}
        return model, prep, facts, state
    return model, prep, facts, compact_state(model, vocabulary_rows(texts))


INIT = {"vilt": "transformer from petl_vit_micro_scenes; text embeddings, pooler and heads random",
        "meter": f"text encoder all-MiniLM-L6-v2 (packaged) and image encoder {MICRO_VISION}, frozen and not saved; "
                 "co-attention layers, transforms, poolers and heads random"}


@torch.no_grad()
def evaluate(model: ViLT | METER, heads: PretrainHeads, pairs: tuple, tokenize, tokenizer,
             prep, seed: int) -> dict[str, float]:
    """Held-out image-text matching, masked-word and (with ``PATCH_LOSS``) patch-shape accuracy (dropout off), on
    pairs never trained on."""
    model.eval()
    images, texts, labels, truths = pairs
    rng = np.random.default_rng(seed + 1)
    n, total = len(texts), {}
    for start in range(0, n, 250):
        idx = np.arange(start, min(n, start + 250))
        other = _others(n, idx, rng, texts, truths)
        _, acc = _losses(model, heads, images[idx], [texts[j] for j in idx], [texts[j] for j in other],
                         tokenize, tokenizer, prep, rng, labels[idx])
        for k, v in acc.items():
            total[k] = total.get(k, 0.0) + v * len(idx)
    model.train()
    return {**{f"eval_{k}_acc": round(v / n, 2) for k, v in total.items()}, "eval_pairs": n}


def vocabulary_rows(pretraining_texts: list[str]) -> torch.Tensor:
    """The token ids of the generated vocabulary: the pretraining captions' and the built-in VL tasks' texts."""
    from petlbench.vl.tasks import TASKS, _splits
    from petlbench.vl.text import OFFLINE_TEXT, text_tokenizer

    tok = text_tokenizer(OFFLINE_TEXT)
    texts = list(pretraining_texts) + [t for task in TASKS for _, ts, _ in _splits(task.name).values() for t in ts]
    ids = set(tok.all_special_ids)
    for t in sorted(set(texts)):
        ids.update(tok(t)["input_ids"])
    return torch.tensor(sorted(ids), dtype=torch.long)


def compact_state(model: ViLT, rows: torch.Tensor) -> dict[str, torch.Tensor]:
    """The backbone's state (no head) with only ``rows`` of the word embeddings (+ their ids under ``ROWS``)."""
    key = "text_embeddings.word_embeddings.weight"
    state = {k: v.detach().cpu().contiguous().clone() for k, v in model.state_dict().items() if not k.startswith("head.")}
    state[key], state[ROWS] = state[key][rows].contiguous(), rows
    return state
