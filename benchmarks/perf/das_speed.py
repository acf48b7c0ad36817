"""GMACs and inference throughput of finalized DAS models versus the plain backbone.

Claim under test (DAS): skipping k of L blocks removes about k/L of the block compute, so GMACs and
inference latency drop (minus the adapters' small cost). Builds the backbone (random init) and DAS
with each ``--skip`` value, finalizes (the skipped blocks are physically replaced by their skip
adapters: no search here, DAS's no-search default skips the last k blocks — every ViT block costs
the same, so which ones does not matter for speed), then measures:

- GMACs per image (``FlopCounterMode``, the benchmark's own ``measure.gmacs``);
- inference images/s on a fixed random batch, in ``--rounds`` interleaved rounds (median), so load
  from other processes hits all models alike.

Usage: ``python benchmarks/perf/das_speed.py [--model vit_base_patch16_224 --batch 8 --skip 1 2]``.
Prints one row per model with ratios relative to the backbone, and a JSON line.
"""

from __future__ import annotations

import argparse
import json
import statistics


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--model", default="vit_base_patch16_224")
    ap.add_argument("--img", type=int, default=None, help="input size (default: the model's)")
    ap.add_argument("--skip", type=int, nargs="+", default=[1, 2], help="DAS k values")
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--steps", type=int, default=3, help="timed forwards per round")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--threads", type=int, default=0, help="torch CPU threads (0 = torch default)")
    args = ap.parse_args()

    import torch

    from petlbench.engine.build import build, make_method
    from petlbench.models import measure
    from petlbench.models.backbones import create_backbone, input_size

    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    kwargs = {"img_size": args.img} if args.img else {}
    torch.manual_seed(0)
    base, _ = create_backbone(args.model, 100, pretrained=False, **kwargs)
    size = input_size(base)
    models = {"backbone": base}
    for k in args.skip:
        method = make_method("das", {"skip": k})
        model = build(method, args.model, 100, pretrained=False, **kwargs).model
        models[f"das k={k}"] = method.finalize(model)

    gmacs = {name: measure.gmacs(m, size) for name, m in models.items()}
    for m in models.values():
        m.to(device).eval()
    speeds: dict[str, list[float]] = {name: [] for name in models}
    for _ in range(args.rounds):
        for name, m in models.items():
            speeds[name].append(measure.infer_throughput(m, size, device, batch_size=args.batch,
                                                         steps=args.steps, warmup=1))
    img_s = {name: statistics.median(v) for name, v in speeds.items()}

    depth = len(base.blocks)
    print(f"{args.model} {size} batch {args.batch} on {device} ({depth} blocks)")
    print(f"{'model':<12} {'GMACs':>9} {'ratio':>7} {'img/s':>9} {'ratio':>7}")
    for name in models:
        print(f"{name:<12} {gmacs[name]:9.3f} {gmacs[name] / gmacs['backbone']:7.4f} "
              f"{img_s[name]:9.2f} {img_s[name] / img_s['backbone']:7.3f}")
    print(json.dumps({"model": args.model, "device": str(device), "batch": args.batch, "depth": depth,
                      "gmacs": gmacs, "infer_img_s": img_s,
                      "gmacs_ratio": {n: gmacs[n] / gmacs["backbone"] for n in models},
                      "infer_ratio": {n: img_s[n] / img_s["backbone"] for n in models}}))


if __name__ == "__main__":
    main()
