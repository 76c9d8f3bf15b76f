"""Fashion-MNIST, resnet20: dense vs l1 one-shot + fine-tune vs DTP vs SFP vs CR-SFP at the same
budget and the same total epochs, over seeds. Prints a markdown table.

    .venv/bin/python benchmarks/fmnist_accuracy.py --seeds 0 1 --dense-epochs 3 --prune-epochs 3 \\
        --train-subset 8192 --test-subset 5000 --threads 1 --out runs/fmnist_accuracy \\
        --methods dense l1 dtp sfp crsfp --lambdas 0 0.5 1 2

Per seed: a dense model trained for D epochs (lr 0.1) is the starting point; then
  dense   another dense model trained for D + P epochs from scratch (the same total)
  l1      one-shot l1 to the budget, then P epochs of fine-tuning (lr 0.01)
  dtp     P epochs of DTP from the dense weights (lr 0.01), then slimmed
  sfp     P epochs of SFP from the dense weights (lr 0.01), then slimmed
  crsfp   P epochs of CR-SFP per --lambdas value (lr 0.01), then slimmed (P-NN)
``--methods`` runs them in the order given. All stages checkpoint every epoch and resume:
rerunning the command continues where it stopped, and finished stages are read back (each
finished stage is added to seedN/results.json at once). Seeds can run as separate processes
in parallel.
"""

from __future__ import annotations

import argparse
import json
import statistics
from pathlib import Path

import torch

from edgeprune.data import open_data
from edgeprune.models import build_model
from edgeprune.pruning.budget import Budget
from edgeprune.pruning.one_shot import prune_one_shot
from edgeprune.train import TrainConfig
from edgeprune.train.jobs import finetune, prune_while_training, train_dense

SPEC = "edgeprune:resnet20"
METHODS = ("dense", "l1", "dtp", "sfp", "crsfp")
LABELS = {"dense": "dense", "l1": "l1 + fine-tune", "dtp": "DTP", "sfp": "SFP"}


def crsfp_key(lam: float) -> str:
    return f"crsfp_lambda{lam:g}"


def run_seed(seed: int, args, data) -> dict:
    out = Path(args.out) / f"seed{seed}"
    budget = Budget.parse(args.budget)
    kw = dict(resume=True, progress=args.progress)
    path = out / "results.json"
    results = json.loads(path.read_text()) if path.is_file() else {}

    def done(key: str, entry: dict) -> None:
        results[key] = entry
        out.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(results, indent=2))

    torch.manual_seed(seed)
    model, shape = build_model(SPEC)
    train_dense(model, SPEC, shape, data, TrainConfig(epochs=args.dense_epochs, lr=0.1, seed=seed), out / "dense_start", **kw)
    weights = out / "dense_start" / "model.pt"
    fine = TrainConfig(epochs=args.prune_epochs, lr=0.01, seed=seed)

    def entry(r, **extra) -> dict:
        return {"accuracy": r.report["accuracy"], "flops_ratio": r.report["flops_ratio"],
                "widths": list(r.plan.widths), **extra}

    for method in args.methods:
        if method == "dense":
            torch.manual_seed(seed)
            model, _ = build_model(SPEC)
            total = args.dense_epochs + args.prune_epochs
            m = train_dense(model, SPEC, shape, data, TrainConfig(epochs=total, lr=0.1, seed=seed), out / "dense", **kw)
            done("dense", {"accuracy": m["accuracy"], "flops_ratio": 1.0})
        elif method == "l1":
            model, _ = build_model(SPEC, weights=weights)
            r = finetune(prune_one_shot(model, SPEC, shape, "l1", budget, args.align), data, fine, out / "l1", **kw)
            done("l1", entry(r))
        elif method == "dtp":
            model, _ = build_model(SPEC, weights=weights)
            r = prune_while_training(model, SPEC, shape, "dtp", budget, args.align, data, fine, out / "dtp", **kw)
            last = json.loads((out / "dtp" / "metrics.json").read_text())["epochs"][-1]
            done("dtp", entry(r, gap_at_freeze=last.get("dtp_gap_at_freeze"),
                              max_mask_sum_error=r.report["dtp"]["max_mask_sum_error"]))
        elif method == "sfp":
            model, _ = build_model(SPEC, weights=weights)
            r = prune_while_training(model, SPEC, shape, "sfp", budget, args.align, data, fine, out / "sfp", **kw)
            done("sfp", entry(r, regrown_per_epoch=r.report["sfp"]["regrown_per_epoch"]))
        elif method == "crsfp":
            for lam in args.lambdas:
                key = crsfp_key(lam)
                model, _ = build_model(SPEC, weights=weights)
                r = prune_while_training(model, SPEC, shape, "crsfp", budget, args.align, data, fine, out / key,
                                         method_options={"consistency_lambda": lam}, **kw)
                last = json.loads((out / key / "metrics.json").read_text())["epochs"][-1]
                done(key, entry(r, regrown_per_epoch=r.report["crsfp"]["regrown_per_epoch"],
                                final_ce_r=last["crsfp_ce_r"], final_ce_p=last["crsfp_ce_p"], final_kl=last["crsfp_kl"]))
        else:
            raise SystemExit(f"unknown method {method!r}; choose from {', '.join(METHODS)}")
    return results


def table(root: Path, args) -> str:
    rows = {}
    seeds = []
    for path in sorted(root.glob("seed*/results.json")):
        seeds.append(path.parent.name)
        for method, r in json.loads(path.read_text()).items():
            rows.setdefault(method, []).append(r)
    lines = [
        f"Fashion-MNIST, {SPEC}, budget {args.budget} (align {args.align}); dense start {args.dense_epochs} epochs, "
        f"then {args.prune_epochs} epochs of pruning/fine-tuning (dense: {args.dense_epochs + args.prune_epochs} epochs); "
        f"train subset {args.train_subset or 60000}, test {args.test_subset or 10000} images; seeds {', '.join(seeds)}",
        "",
        "| method | FLOPs kept | top-1 per seed | mean |",
        "|---|---|---|---|",
    ]
    lams = sorted({float(k[len("crsfp_lambda"):]) for k in rows if k.startswith("crsfp_lambda")})
    for method in ["dense", "l1", "dtp", "sfp", *(crsfp_key(lam) for lam in lams)]:
        if method in rows:
            accs = [r["accuracy"] for r in rows[method]]
            label = LABELS.get(method) or f"CR-SFP, lambda {method[len('crsfp_lambda'):]}"
            lines.append(f"| {label} | {rows[method][0]['flops_ratio']:.3f} | "
                         f"{' / '.join(f'{100 * a:.2f}' for a in accs)} ({len(accs)} seeds) | "
                         f"{100 * statistics.mean(accs):.2f} |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1])
    parser.add_argument("--dense-epochs", type=int, default=3)
    parser.add_argument("--prune-epochs", type=int, default=3)
    parser.add_argument("--train-subset", type=int, default=None)
    parser.add_argument("--test-subset", type=int, default=None)
    parser.add_argument("--budget", default="flops=0.5")
    parser.add_argument("--align", type=int, default=1)
    parser.add_argument("--methods", nargs="+", default=list(METHODS), choices=METHODS,
                        help="what to run, in this order (the dense start always runs first)")
    parser.add_argument("--lambdas", type=float, nargs="+", default=[1.0], help="CR-SFP consistency weights")
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--progress", action="store_true")
    parser.add_argument("--table-only", action="store_true", help="print the table from finished seeds")
    parser.add_argument("--out", default="runs/fmnist_accuracy")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    if not args.table_only:
        data = open_data("fashion-mnist", input_shape=(1, 1, 28, 28), train_subset=args.train_subset,
                         test_subset=args.test_subset)
        for seed in args.seeds:
            run_seed(seed, args, data)
    print(table(Path(args.out), args))


if __name__ == "__main__":
    main()
