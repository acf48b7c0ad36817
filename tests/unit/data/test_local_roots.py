"""VTAB-1k (NOAH layout, one root of task folders) and FGVC (VPT's json splits and the official releases) from a
local folder, and the preprocessing protocols (``--protocol``) as the official loaders compute them."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from petlbench.data.preprocess import Preprocess
from petlbench.datasets import load_data

from ...checks import one_line_error
from ...conftest import write_vtab_root


def _image(path: Path, v: int) -> None:
    from PIL import Image

    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", (10, 8), (v % 256, 40, 200 - v % 200)).save(path)


def test_a_vtab_task_folder_is_named_and_grouped_as_the_published_task(tmp_path):
    root = write_vtab_root(tmp_path / "vtab-1k", ["oxford_pet", "smallnorb_azi"])
    pet, norb = load_data(str(root / "oxford_pet")), load_data(str(root / "smallnorb_azi"))
    assert (pet.name, pet.group, norb.name, norb.group) == ("vtab-oxford_iiit_pet", "natural",
                                                            "vtab-smallnorb_azi", "structured")
    assert {s: len(lab) for s, (_, lab) in pet.splits.items()} == {"train": 6, "val": 6, "test": 6}


def test_a_vtab_root_passed_as_one_dataset_says_how_to_run_its_tasks(cli, tmp_path):
    root = write_vtab_root(tmp_path / "vtab-1k", ["cifar", "dtd"])
    code, _, err = cli("run", "linear", "--dataset", root, "--out", tmp_path / "s")
    one_line_error(code, err, "vtab-1k root (2 of 19 task folders", f"{root / 'cifar'}", "suite vtab-1k --root")


def _vpt_json(root: Path) -> Path:
    for split, n in (("train", 6), ("val", 3), ("test", 3)):
        anno = {}
        for i in range(n):
            _image(root / "images" / split / f"{i}.jpg", 20 * i)
            anno[f"{split}/{i}.jpg"] = 7 + i % 3  # VPT's class ids need not start at 0
        (root / f"{split}.json").write_text(json.dumps(anno))
    return root


def _cub(root: Path) -> Path:
    lines = {"images.txt": [], "image_class_labels.txt": [], "train_test_split.txt": []}
    for i in range(1, 13):
        rel = f"{i % 3 + 1:03d}.Bird/{i}.jpg"
        _image(root / "images" / rel, 10 * i)
        lines["images.txt"].append(f"{i} {rel}")
        lines["image_class_labels.txt"].append(f"{i} {i % 3 + 1}")
        lines["train_test_split.txt"].append(f"{i} {int(i <= 9)}")
    for name, rows in lines.items():
        (root / name).write_text("\n".join(rows) + "\n")
    (root / "classes.txt").write_text("1 001.Albatross\n2 002.Auklet\n3 003.Blackbird\n")
    return root


def _flowers(root: Path) -> Path:
    from scipy.io import savemat

    for i in range(1, 13):
        _image(root / "jpg" / f"image_{i:05d}.jpg", i * 15)
    savemat(root / "imagelabels.mat", {"labels": np.array([[i % 3 + 1 for i in range(1, 13)]])})
    savemat(root / "setid.mat", {"trnid": np.array([list(range(1, 7))]), "valid": np.array([[7, 8, 9]]),
                                 "tstid": np.array([[10, 11, 12]])})
    return root


def _dogs(root: Path) -> Path:
    from scipy.io import savemat

    for split, ids in (("train", range(9)), ("test", range(9, 12))):
        files = np.empty((len(ids), 1), dtype=object)
        for k, i in enumerate(ids):
            rel = f"n0{i % 3}-breed{i % 3}/{i}.jpg"
            _image(root / "Images" / rel, 9 * i)
            files[k, 0] = np.array([rel])
        (root / "lists").mkdir(exist_ok=True)
        savemat(root / "lists" / f"{split}_list.mat", {"file_list": files, "labels": np.array([[i % 3 + 1] for i in ids])})
    return root


def _cars(root: Path) -> Path:
    from scipy.io import savemat

    for split, ids, name in (("train", range(9), "cars_train_annos.mat"), ("test", range(9, 12),
                                                                         "cars_test_annos_withlabels.mat")):
        records = np.zeros((1, len(ids)), dtype=[("fname", "O"), ("class", "O")])
        for k, i in enumerate(ids):
            _image(root / f"cars_{split}" / f"{i:05d}.jpg", 11 * i)
            records[0, k] = (np.array([f"{i:05d}.jpg"]), np.array([[i % 3 + 1]]))
        (root / "devkit").mkdir(exist_ok=True)
        savemat(root / "devkit" / name, {"annotations": records})
    return root


@pytest.mark.parametrize("folder, writer, name, sizes, classes", [
    ("CUB_200_2011", _vpt_json, "cub200", {"train": 6, "val": 3, "test": 3}, ["7", "8", "9"]),
    ("CUB_200_2011", _cub, "cub200", {"train": 8, "val": 1, "test": 3},
     ["001.Albatross", "002.Auklet", "003.Blackbird"]),
    ("OxfordFlowers", _flowers, "flowers102", {"train": 6, "val": 3, "test": 3}, ["1", "2", "3"]),
    ("Stanford-Dogs", _dogs, "stanford-dogs", {"train": 8, "val": 1, "test": 3},
     ["n00-breed0", "n01-breed1", "n02-breed2"]),
    ("stanford_cars", _cars, "stanford-cars", {"train": 8, "val": 1, "test": 3}, ["1", "2", "3"]),
])
def test_fgvc_layouts_load_with_their_splits_and_classes(tmp_path, folder, writer, name, sizes, classes):
    raw = load_data(str(writer(tmp_path / folder)))
    assert (raw.name, raw.classes) == (name, classes)
    assert {s: len(lab) for s, (_, lab) in raw.splits.items()} == sizes
    assert raw.splits["train"][0].load(0).size == (10, 8)  # the image files resolve and decode


def test_an_fgvc_split_file_naming_a_missing_image_exits_2(cli, tmp_path):
    root = _cub(tmp_path / "CUB_200_2011")
    (root / "images" / "002.Bird" / "4.jpg").unlink()
    code, _, err = cli("run", "linear", "--dataset", root, "--out", tmp_path / "s")
    one_line_error(code, err, "4.jpg", "is missing", "copy the whole folder")


def _official_noah(img) -> torch.Tensor:
    """NOAH lib/datasets.py build_transform(direct_resize, no_aug) built from torchvision, at 16 px."""
    from torchvision import transforms

    from petlbench.data.protocols import IMAGENET_MEAN, IMAGENET_STD

    t = transforms.Compose([transforms.Resize((16, 16), interpolation=3), transforms.ToTensor(),
                            transforms.Normalize(IMAGENET_MEAN, IMAGENET_STD)])
    return t(img)


def test_noah_protocol_is_noahs_torchvision_transform():
    from PIL import Image

    from petlbench.data.protocols import IMAGENET_MEAN, IMAGENET_STD

    arr = np.random.default_rng(0).integers(0, 256, (37, 45, 3), dtype=np.uint8)
    ours = Preprocess((3, 16, 16), IMAGENET_MEAN, IMAGENET_STD, "noah")(arr[None])[0]
    torch.testing.assert_close(ours, _official_noah(Image.fromarray(arr)), rtol=0, atol=1e-6)


def test_vpt_fgvc_protocol_is_vpts_centre_crop():
    """VPT transforms.py (test): Resize(256) on the shorter side, CenterCrop(224), at 1/14 scale: 18 then 16."""
    from PIL import Image
    from torchvision import transforms

    from petlbench.data.protocols import IMAGENET_MEAN, IMAGENET_STD

    yy, xx = np.mgrid[0:36, 0:54]  # a smooth image: the two bilinear kernels differ on noise, not on gradients
    arr = np.stack([4 * yy, 3 * xx, 2 * (yy + xx)], -1).astype(np.uint8)
    t = transforms.Compose([transforms.Resize(18), transforms.CenterCrop(16), transforms.ToTensor(),
                            transforms.Normalize(IMAGENET_MEAN, IMAGENET_STD)])
    ours = Preprocess((3, 16, 16), IMAGENET_MEAN, IMAGENET_STD, "vpt-fgvc")(arr[None])[0]
    assert ours.shape == (3, 16, 16)
    # torchvision resizes a PIL image with PIL's antialiased bilinear, we with torch's: within a few grey levels
    assert float((ours - t(Image.fromarray(arr))).abs().max()) < 0.05


def test_the_protocol_is_in_the_identity_only_when_asked():
    """A new identity key that keeps every stored row's config hash: the default protocol is left out."""
    from dataclasses import replace

    from petlbench.config.options import RunConfig, identity
    from petlbench.registry import METHODS

    base = RunConfig(method="linear", dataset="d", model="m", precision="fp32", frozen_backbone_mode="eval")
    mcfg = METHODS.get("linear").Config()
    assert "protocol" not in identity(base, mcfg, {})
    assert identity(replace(base, protocol="vpt-vtab"), mcfg, {})["protocol"] == "vpt-vtab"
