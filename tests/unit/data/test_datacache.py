"""Data once: decoded-once splits serve the same batches, in the same order, with the same random draws."""

import numpy as np
import torch

from petlbench.data import cache as datacache
from petlbench.data.batching import batches, split_off
from petlbench.data.preprocess import LazyImages
from petlbench.datasets import load_data

DATA_CFG = {"input_size": (3, 32, 32), "mean": (0.5, 0.5, 0.5), "std": (0.25, 0.25, 0.25)}


def _epochs(ds, seed=0, n=2):
    """Two shuffled epochs and an eval pass of ``ds``, and the RNG states after them."""
    gen, out = torch.Generator().manual_seed(seed), []
    torch.manual_seed(seed)
    for _ in range(n):
        out += [(x.clone(), y.clone()) for x, y in batches(ds, 5, shuffle=True, generator=gen)]
    out += [(x.clone(), y.clone()) for x, y in batches(ds, 5)]
    return out, gen.get_state(), torch.get_rng_state()


def _same(a, b):
    (ba, ga, ta), (bb, gb, tb) = a, b
    assert len(ba) == len(bb)
    for (xa, ya), (xb, yb) in zip(ba, bb, strict=True):
        assert torch.equal(xa, xb) and torch.equal(ya, yb)
    assert torch.equal(ga, gb) and torch.equal(ta, tb)


def _splits(image_folder):
    raw = load_data(str(image_folder))
    return raw, raw.prepare(DATA_CFG)


def test_memory_cache_serves_what_lazy_decoding_served(image_folder):
    raw, lazy = _splits(image_folder)
    assert isinstance(lazy.train, LazyImages)
    fp = raw.fingerprint()
    rng = torch.get_rng_state()
    cached = datacache.cache_splits(_splits(image_folder)[1], fp, None)
    assert torch.equal(torch.get_rng_state(), rng)  # decoding draws nothing from the run's global RNG
    assert isinstance(cached.train, datacache.CachedImages) and isinstance(cached.val, datacache.CachedImages)
    assert isinstance(cached.test, LazyImages)  # read once: not cached
    assert cached.search_train is cached.train and cached.search_val is cached.val
    _same(_epochs(lazy.train), _epochs(cached.train))
    # a search's held-out part of a decoded-once split is still served as the lazy one was
    _same(_epochs(split_off(lazy.train, 0.25)[1]), _epochs(split_off(cached.train, 0.25)[1]))
    again = datacache.cache_splits(_splits(image_folder)[1], fp, None)  # same process: no second decode
    assert again.train.tensors[0] is cached.train.tensors[0]


def test_memory_mapped_file_when_memory_is_short(image_folder, tmp_path, monkeypatch):
    raw, lazy = _splits(image_folder)
    monkeypatch.setattr(datacache, "MEMORY_SHARE", 0.0)
    monkeypatch.setattr(datacache, "_MEMORY", {})
    cached = datacache.cache_splits(_splits(image_folder)[1], raw.fingerprint(), tmp_path / "cache")
    files = sorted((tmp_path / "cache" / "data").glob("*.npy"))
    assert len(files) == 2 and not list((tmp_path / "cache" / "data").glob("*.tmp"))  # train and val
    assert isinstance(np.load(files[0], mmap_mode="r"), np.memmap)
    _same(_epochs(lazy.train), _epochs(cached.train))
    # another fingerprint (a different limit) is another file; an unchanged split reuses its file
    other = load_data(str(image_folder), limit=6)
    changed = sum(other.fingerprint()[s] != raw.fingerprint()[s] for s in ("train", "val"))
    assert changed >= 1
    datacache.cache_splits(other.prepare(DATA_CFG), other.fingerprint(), tmp_path / "cache")
    assert len(list((tmp_path / "cache" / "data").glob("*.npy"))) == 2 + changed


def test_trainval_concatenates_the_cached_splits(image_folder):
    raw = load_data(str(image_folder))
    cached = datacache.cache_splits(raw.prepare(DATA_CFG, trainval=True), raw.fingerprint(), None)
    assert [type(d) for d in cached.train.datasets] == [datacache.CachedImages] * 2
    assert cached.search_val is cached.train.datasets[1] and cached.val is None
