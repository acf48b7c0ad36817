"""``--weights`` files of VL models go through the one reader every track uses (``models.weights.
load_state_dict_file``): an official Lightning ``.ckpt`` (its ``state_dict``; hyper-parameters in an
``argparse.Namespace``) loads; a corrupt safetensors, a truncated ``.ckpt`` or a ``.ckpt`` holding a Namespace alone
is one line, exit 2, nothing stored."""

from __future__ import annotations

import argparse

import pytest
import torch

from petlbench.errors import UserError
from petlbench.models.weights import load_state_dict_file

from ...checks import one_line_error


def _bad(tmp_path, case: str):
    if case == "corrupt safetensors":
        path = tmp_path / "w.safetensors"
        path.write_bytes(b"\x10\x00\x00\x00\x00\x00\x00\x00{not a header")
    elif case == "truncated ckpt":
        path = tmp_path / "w.ckpt"
        torch.save({"state_dict": {"a": torch.zeros(1000)}}, path)
        path.write_bytes(path.read_bytes()[:300])
    else:
        path = tmp_path / "w.ckpt"
        torch.save(argparse.Namespace(lr=1e-4, image_size=384), path)
    return path


@pytest.mark.parametrize("model", ["petl_vilt_micro_scenes", "petl_meter_micro_scenes"])
@pytest.mark.parametrize("case, words", [
    ("corrupt safetensors", ["cannot read weights file", "as a safetensors file", "damaged or truncated"]),
    ("truncated ckpt", ["cannot read weights file", "as a torch file", "damaged or truncated"]),
    ("namespace ckpt", ["holds no state dict of tensors", "it holds a Namespace", "official checkpoint"]),
])
def test_an_unreadable_vl_weights_file_is_one_line_exit_2(cli, tmp_path, model, case, words):
    path = _bad(tmp_path, case)
    code, _, err = cli("run", "linear", "--dataset", "shapes-vqa", "--model", model, "--weights", path,
                       "--limit", "8", "--epochs", "1", "--out", tmp_path / "s")
    one_line_error(code, err, str(path.name), *words)
    assert not (tmp_path / "s" / "results.csv").exists()


def test_an_official_lightning_checkpoint_loads_with_its_hyper_parameters(tmp_path):
    """The official ViLT / METER .ckpt layout: epoch, global_step, state_dict, hyper_parameters (a Namespace in
    older Lightning); the tensors come back exactly."""
    state = {"transformer.pos_embed": torch.randn(1, 5, 4), "pooler.dense.weight": torch.randn(4, 4)}
    path = tmp_path / "official.ckpt"
    torch.save({"epoch": 9, "global_step": 100, "state_dict": state,
                "hyper_parameters": argparse.Namespace(config={"image_size": 384})}, path)
    got = load_state_dict_file(path)
    assert set(got) == set(state) and all(torch.equal(got[k], v) for k, v in state.items())
    with pytest.raises(UserError, match="holds no state dict of tensors .it holds a dict of 2 entries, e.g. 'epoch'"):
        torch.save({"epoch": 9, "hyper_parameters": {}}, path)
        load_state_dict_file(path)


def test_an_official_meter_ckpt_file_loads_into_meter(tmp_path):
    """METER's released checkpoint layout (the official keys, from ``to_official``) in a Lightning .ckpt on disk,
    through the reader and ``from_official``: every backbone tensor lands."""
    from petlbench.vl.models.meter import from_official, to_official
    from petlbench.vl.models.vilt import load_backbone_state

    from ...vl_models import tiny_meter

    src, dst = tiny_meter(5, 32, seed=3), tiny_meter(5, 32, seed=4)
    path = tmp_path / "meter_clip16_288_roberta_pretrain.ckpt"
    torch.save({"state_dict": to_official(src), "hyper_parameters": argparse.Namespace(image_size=288)}, path)
    load_backbone_state(dst, from_official(load_state_dict_file(path), dst), "test")
    assert all(torch.equal(dst.state_dict()[k], v) for k, v in src.state_dict().items() if not k.startswith("head."))
