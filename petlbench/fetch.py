"""What each paper suite needs from the network (``ASSETS``), fetched once into one folder (``fetch``), and that folder
used by runs with the hub switched off (``use_local_hub``): ``petlbench fetch SUITE --to DIR`` on a machine with a
network, then ``petlbench suite SUITE --root DIR`` on a compute node without one.

The folder holds the suite's data root (``DIR/<task>``, as the suite's ``root`` key describes it), files such as
METER's checkpoint, and ``DIR/hub``: a Hugging Face cache (the layout ``huggingface_hub`` writes) of the models,
weights and tokenizers the suite names on the hub, so every hub code path (timm's pretrained weights, transformers'
models and tokenizers, e.g. METER's ``roberta-base`` tokenizer) finds them offline under their own names.

Sizes are the download sizes the sources publish, rounded (``gb``; ``petlbench suite --plan`` adds them up). An asset
that no program can fetch unattended (a form to fill in, a writer of the authors to run) is ``manual``: ``fetch``
downloads what it can and says what is left.
"""

from __future__ import annotations

import json
import os
import shutil
import sys
import time
import urllib.request
import zipfile
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

from petlbench.errors import UserError

HUB_DIR = "hub"  # DIR/hub: the Hugging Face cache of a fetched folder
MANIFEST = "petlbench-fetch.json"


@dataclass(frozen=True)
class Asset:
    """One thing a suite needs: a hub model / dataset repository, a URL, or a manual step (``kind``), where it goes
    under the fetched folder (``dest``; hub models go to the cache ``DIR/hub``) and its download size in GB."""

    name: str
    kind: str  # hub-model | hub-dataset | url | manual
    source: str  # repository id or URL (manual: where to get it)
    dest: str
    gb: float
    files: tuple[str, ...] = ()  # hub repositories: the files to take (allow_patterns); all when empty
    unpack: bool = False  # a zip extracted into dest
    note: str = ""


VQA = "https://s3.amazonaws.com/cvmlp/vqa/mscoco/vqa/"
COCO = "http://images.cocodataset.org/zips/"
VQAV2 = (  # the official release (visualqa.org/download.html; DVP's DATA.md links), read by vl/data/vqa_json.py
    Asset("VQAv2 train questions", "url", VQA + "v2_Questions_Train_mscoco.zip", "vqav2", 0.01, unpack=True),
    Asset("VQAv2 val questions", "url", VQA + "v2_Questions_Val_mscoco.zip", "vqav2", 0.01, unpack=True),
    Asset("VQAv2 train annotations", "url", VQA + "v2_Annotations_Train_mscoco.zip", "vqav2", 0.02, unpack=True),
    Asset("VQAv2 val annotations", "url", VQA + "v2_Annotations_Val_mscoco.zip", "vqav2", 0.01, unpack=True),
    Asset("COCO train2014 images", "url", COCO + "train2014.zip", "vqav2", 13.0, unpack=True),
    Asset("COCO val2014 images", "url", COCO + "val2014.zip", "vqav2", 6.0, unpack=True),
)
CLIP_B16 = Asset("CLIP ViT-B/16 image encoder (timm)", "hub-model", "timm/vit_base_patch16_clip_224.openai", HUB_DIR,
                 0.35, ("*.safetensors", "*.json"))
ASSETS: dict[str, tuple[Asset, ...]] = {
    "vtab-1k": (
        Asset("ViT-B/16 IN-21k weights (timm .orig_in21k)", "hub-model", "timm/vit_base_patch16_224.orig_in21k", HUB_DIR,
              0.35, ("*.safetensors", "*.json")),
        Asset("VTAB-1k, NOAH layout (JPEG)", "hub-dataset", "XiN0919/VTAB-1k", ".", 4.5, unpack=True,
              note="size: our estimate (about 440k JPEGs), the repository states none"),
    ),
    "apt-vilt": (
        Asset("ViLT-B/32 weights + tokenizer", "hub-model", "dandelin/vilt-b32-mlm", HUB_DIR, 0.47),
        *VQAV2,
    ),
    "apt-meter": (
        Asset("METER-CLIP16-RoBERTa pretrained checkpoint", "url",
              "https://github.com/zdou0830/METER/releases/download/checkpoint/meter_clip16_288_roberta_pretrain.ckpt",
              "meter_clip16_288_roberta_pretrain.ckpt", 1.3),
        Asset("RoBERTa-base tokenizer (METER's)", "hub-model", "roberta-base", HUB_DIR, 0.002,
              ("*.json", "*.txt")),
        *VQAV2,
        Asset("SNLI-VE in METER's files", "manual", "github.com/necla-ml/SNLI-VE + Flickr30K images (a request "
              "form)", "snli-ve", 4.5, note="write DIR/snli-ve/snli_{train,dev,test}.arrow with METER's "
              "meter/utils/write_snli.py"),
    ),
    "dvp": (
        Asset("BERT-base (uncased)", "hub-model", "bert-base-uncased", HUB_DIR, 0.44,
              ("*.safetensors", "*.json", "*.txt")),
        Asset("T5-base", "hub-model", "t5-base", HUB_DIR, 0.9, ("*.safetensors", "*.json", "*.model")),
        CLIP_B16,
        *VQAV2,
        Asset("GQA in DVP's files", "manual", "downloads.cs.stanford.edu/nlp/data/gqa/ (questions1.2.zip, "
              "images.zip)", "gqa", 20.5, note="write DIR/gqa/gqa_{train,val,test-dev}.arrow with DVP's "
              "dvp/utils/write_gqa.py (its dicts.json vocabulary)"),
        Asset("SNLI-VE in DVP's files", "manual", "OFA's snli_ve_data.zip (DVP DATA.md)", "snli-ve", 5.0,
              note="write DIR/snli-ve/snli_ve_{train,dev,test}.arrow with DVP's dvp/utils/write_snli_ve.py"),
    ),
}


def assets(suite: str) -> tuple[Asset, ...]:
    """The assets of a suite (by name or path: its file name); none for a suite that needs no download."""
    return ASSETS.get(Path(suite).stem, ())


# ----------------------------------------------------------------------------- using a fetched folder offline


def use_local_hub(folder: Path) -> None:
    """Serve every hub load of this process from the Hugging Face cache ``folder`` with the hub switched off
    (environment for libraries not yet imported, the constant for ``huggingface_hub`` if it is)."""
    from petlbench.hub import go_offline

    os.environ["HF_HUB_CACHE"] = str(folder)
    if "huggingface_hub.constants" in sys.modules:
        sys.modules["huggingface_hub.constants"].HF_HUB_CACHE = str(folder)
    go_offline()


# ----------------------------------------------------------------------------- fetching


Say = Callable[[str], None]


def _hub(asset: Asset, to: Path) -> None:
    """A hub model into the cache ``DIR/hub``; a hub dataset's archives unpacked into ``dest``."""
    from huggingface_hub import snapshot_download

    if asset.kind == "hub-model":
        snapshot_download(asset.source, cache_dir=str(to / HUB_DIR), allow_patterns=list(asset.files) or None)
        return
    local = Path(snapshot_download(asset.source, repo_type="dataset", local_dir=str(to / "downloads" / asset.source)))
    for archive in sorted(local.rglob("*.zip")):
        _unzip(archive, to / asset.dest)


def _url(asset: Asset, to: Path) -> None:
    """A file to ``dest``, or an archive unpacked into it (the archive removed after)."""
    target = to / asset.dest if not asset.unpack else to / "downloads" / asset.source.rsplit("/", 1)[1]
    if asset.unpack and _done(target, to / asset.dest).is_file():
        return
    target.parent.mkdir(parents=True, exist_ok=True)
    if not target.is_file():
        part = target.with_suffix(target.suffix + ".part")
        urllib.request.urlretrieve(asset.source, part)  # noqa: S310 (the declared https/http sources above)
        os.replace(part, target)
    if asset.unpack:
        _unzip(target, to / asset.dest)


def _done(archive: Path, dest: Path) -> Path:
    return dest / f".unpacked-{archive.name}"


def _unzip(archive: Path, dest: Path) -> None:
    """Extract ``archive`` into ``dest``, mark it done and remove it (a fetch run again skips it)."""
    dest.mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(archive) as z:
        z.extractall(dest)
    _done(archive, dest).touch()
    archive.unlink()


FETCHERS: dict[str, Callable[[Asset, Path], None]] = {"hub-model": _hub, "hub-dataset": _hub, "url": _url}


def fetch(suite: str, to: Path, say: Say) -> list[Asset]:
    """Fetch every asset of ``suite`` into ``to`` (what is there already is kept); writes the manifest and returns the
    manual assets still to be provided."""
    items = assets(suite)
    if not items:
        raise UserError(f"suite '{suite}' needs nothing from the network (built-in data, bundled weights); "
                        f"paper suites: {', '.join(ASSETS)}")
    to.mkdir(parents=True, exist_ok=True)
    done, manual = [], []
    for a in items:
        if a.kind == "manual":
            manual.append(a)
            continue
        say(f"fetching {a.name} ({a.gb:g} GB) from {a.source} ...")
        t0 = time.perf_counter()
        try:
            FETCHERS[a.kind](a, to)
        except Exception as e:  # network, disk, a moved source
            raise UserError(f"could not fetch {a.name} from {a.source} ({type(e).__name__}: "
                            f"{str(e).splitlines()[0][:100] if str(e) else ''}); check the network and run the same "
                            "command again (what was fetched is kept)") from None
        done.append({**asdict(a), "seconds": round(time.perf_counter() - t0, 1)})
    (to / MANIFEST).write_text(json.dumps({"suite": Path(suite).stem, "fetched": done,
                                           "manual": [asdict(a) for a in manual]}, indent=1))
    shutil.rmtree(to / "downloads", ignore_errors=True)
    return manual


def data_root(to: Path) -> Path:
    """The suite root inside a fetched folder: the folder itself, or the one below it that holds VTAB-1k's task
    folders (the archive's own top folder)."""
    from petlbench.data.noah import task_dirs

    if task_dirs(to):
        return to
    return next((d for d in sorted(to.rglob("*")) if d.is_dir() and len(d.relative_to(to).parts) <= 3
                 and task_dirs(d)), to)
