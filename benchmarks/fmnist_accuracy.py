"""Fashion-MNIST, resnet20: every pruning method of edgeprune at one budget, over seeds, with
the same number of training epochs in total. Prints a markdown table (mean and std over seeds).

    .venv/bin/python benchmarks/fmnist_accuracy.py --seeds 0 --dense-epochs 8 --prune-epochs 6 \\
        --train-subset 2048 --test-subset 2000 --threads 1 --out runs/fmnist_methods
    # the same with --seeds 1, --seeds 2 in other processes; then --table-only prints the table

Per seed, with D = --dense-epochs and P = --prune-epochs (every row trains D + P epochs in all):
  dense     a dense model trained D + P epochs from scratch (lr 0.1)
  the dense start: a dense model trained D epochs (lr 0.1); then, from its weights (lr 0.01):
  l1, random, thinet, he2017
            one-shot to the budget (ThiNet / He et al. sample the training split and refit the
            next layer by least squares), then P epochs of fine-tuning
  dtp, sfp, crsfp, resrep, reprune
            P epochs of the training-time method, then slimmed
  han       P epochs of iterative magnitude prune-retrain to --han-sparsity (no channel removed)
  from scratch, as the papers train them (lr 0.1):
  slimming, sss
            D epochs of sparsity training from random init (BN-scale L1 / block factors with
            APG), then pruned to the budget, then P epochs of fine-tuning (lr 0.01)
  scratch-e, scratch-b
            the l1 row's plan trained from random init: D + P epochs (E), or
            round((D + P) x dense FLOPs / pruned FLOPs) epochs (B: the same training compute)
``--methods`` runs them in the order given (scratch-e/b need l1's plan, which is made if
missing). All stages checkpoint every epoch and resume: rerunning the command continues where
it stopped, and finished rows are read back (each is added to seedN/results.json at once).
Seeds can run as separate processes in parallel.
"""

from __future__ import annotations

import argparse
import json
import statistics
from pathlib import Path

import torch

from edgeprune.data import open_data
from edgeprune.data.batches import train_batches
from edgeprune.models import build_model
from edgeprune.pruning.budget import Budget
from edgeprune.pruning.one_shot import prune_one_shot
from edgeprune.train import TrainConfig
from edgeprune.train.jobs import finetune, prune_unstructured, prune_while_training, train_dense

SPEC = "edgeprune:resnet20"
ONE_SHOT = ("l1", "random", "thinet", "he2017")
TRAINING = ("dtp", "sfp", "crsfp", "resrep", "reprune")
FROM_SCRATCH = ("slimming", "sss")
METHODS = ("dense", *ONE_SHOT, *TRAINING, "han", *FROM_SCRATCH, "scratch-e", "scratch-b")
LABELS = {"dense": "dense", "l1": "l1 + fine-tune", "random": "random + fine-tune", "thinet": "ThiNet + fine-tune",
          "he2017": "He et al. 2017 + fine-tune", "dtp": "DTP", "sfp": "SFP", "crsfp": "CR-SFP (lambda 1)",
          "resrep": "ResRep", "reprune": "REPrune", "han": "Han et al. 2015 (unstructured)",
          "slimming": "Network Slimming + fine-tune", "sss": "SSS + fine-tune", "scratch-e": "Scratch-E (l1 plan)",
          "scratch-b": "Scratch-B (l1 plan)"}


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

    def entry(r, **extra) -> dict:
        return {"accuracy": r.report["accuracy"], "flops_ratio": r.report["flops_ratio"],
                "params_ratio": r.report["params_ratio"], "widths": list(r.plan.widths),
                "removed_blocks": list(r.plan.removed_blocks),
                "bn_recalibration": r.report.get("bn_recalibration"), **extra}

    def fresh():
        torch.manual_seed(seed)
        return build_model(SPEC)[0]

    total = args.dense_epochs + args.prune_epochs
    shape = build_model(SPEC)[1]
    torch.manual_seed(seed)
    start_model, _ = build_model(SPEC)
    train_dense(start_model, SPEC, shape, data, TrainConfig(epochs=args.dense_epochs, lr=0.1, seed=seed),
                out / "dense_start", **kw)
    weights = out / "dense_start" / "model.pt"
    fine = TrainConfig(epochs=args.prune_epochs, lr=0.01, seed=seed)

    def started():
        return build_model(SPEC, weights=weights)[0]

    def one_shot(method: str):
        calibration = (b.x for b in train_batches(data.train, 128, seed=seed, epoch=0, aug=None))
        options = {"seed": seed} if method == "random" else None
        pruned = prune_one_shot(started(), SPEC, shape, method, budget, args.align, options=options,
                                calibration=calibration)
        return finetune(pruned, data, fine, out / method, **kw)

    def l1_plan() -> Path:
        plan = out / "l1" / "plan.json"
        if not plan.is_file():
            pruned = prune_one_shot(started(), SPEC, shape, "l1", budget, args.align)
            plan.parent.mkdir(parents=True, exist_ok=True)
            pruned.plan.save(plan)
        return plan

    for method in args.methods:
        if method in results:
            continue
        if method == "dense":
            m = train_dense(fresh(), SPEC, shape, data, TrainConfig(epochs=total, lr=0.1, seed=seed), out / "dense", **kw)
            done("dense", {"accuracy": m["accuracy"], "flops_ratio": 1.0, "params_ratio": 1.0, "epochs": total})
        elif method in ONE_SHOT:
            r = one_shot(method)
            if method == "l1":
                r.plan.save(out / "l1" / "plan.json")
            done(method, entry(r))
        elif method == "crsfp":
            for lam in args.lambdas:
                r = prune_while_training(started(), SPEC, shape, "crsfp", budget, args.align, data, fine,
                                         out / crsfp_key(lam), method_options={"consistency_lambda": lam}, **kw)
                done("crsfp" if lam == 1 else crsfp_key(lam), entry(r))
        elif method in TRAINING:
            r = prune_while_training(started(), SPEC, shape, method, budget, args.align, data, fine, out / method, **kw)
            done(method, entry(r))
        elif method == "han":
            r = prune_unstructured(started(), SPEC, shape, "han", Budget.parse(f"sparsity={args.han_sparsity}"),
                                   data, fine, out / "han", **kw)
            done("han", {"accuracy": r.report["accuracy"], "flops_ratio": 1.0, "params_ratio": 1.0,
                         "sparsity": r.report["sparsity"],
                         "bitmask_bytes_ratio": r.report["sizes"]["pruned"]["bitmask"] / r.report["sizes"]["dense"]["dense"]})
        elif method in FROM_SCRATCH:
            sparse = TrainConfig(epochs=args.dense_epochs, lr=0.1, seed=seed)
            pruned = prune_while_training(fresh(), SPEC, shape, method, budget, args.align, data, sparse,
                                          out / f"{method}_sparse", **kw)
            r = finetune(pruned, data, fine, out / method, **kw)
            done(method, entry(r, accuracy_before_finetune=pruned.report["accuracy"]))
        elif method in ("scratch-e", "scratch-b"):
            from edgeprune.pruning.request import PruneRequest
            from edgeprune.pruning.scratch import train_from_scratch

            request = PruneRequest.build(from_plan=str(l1_plan()), scratch=method[-1], data="fashion-mnist",
                                         epochs=total, lr=0.1, seed=seed, out=str(out / method))
            r = train_from_scratch(fresh(), request, shape, data, **kw)
            done(method, entry(r, epochs=r.report["scratch"]["epochs"]))
        else:
            raise SystemExit(f"unknown method {method!r}; choose from {', '.join(METHODS)}")
    return results


SCHEDULE = ("dense_epochs", "prune_epochs", "train_subset", "test_subset", "budget", "align", "han_sparsity")


def check_schedule(root: Path, args) -> None:
    """Write root/schedule.json on the first run; refuse to mix rows of another schedule."""
    mine = {k: getattr(args, k) for k in SCHEDULE}
    path = root / "schedule.json"
    if path.is_file():
        theirs = json.loads(path.read_text())
        if theirs != mine:
            raise SystemExit(f"{root} holds runs of another schedule {theirs}; use another --out")
    else:
        root.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(mine, indent=2))


def table(root: Path) -> str:
    schedule = json.loads((root / "schedule.json").read_text())
    rows: dict[str, list[dict]] = {}
    seeds = []
    for path in sorted(root.glob("seed*/results.json")):
        seed = path.parent.name[len("seed"):]
        seeds.append(seed)
        for method, r in json.loads(path.read_text()).items():
            rows.setdefault("crsfp" if method == "crsfp_lambda1" else method, []).append({**r, "seed": seed})
    l1_by_seed = {r["seed"]: 100 * r["accuracy"] for r in rows.get("l1", [])}
    d, p = schedule["dense_epochs"], schedule["prune_epochs"]
    lines = [
        f"Fashion-MNIST, {SPEC}, budget {schedule['budget']} (align {schedule['align']}); every row trains "
        f"{d + p} epochs in all (dense start {d} epochs + {p} epochs of pruning/fine-tuning, or from scratch); "
        f"train subset {schedule['train_subset'] or 60000}, test {schedule['test_subset'] or 10000} images; "
        f"seeds {', '.join(seeds)}",
        "",
        "| method | FLOPs kept | params kept | top-1 % mean ± std | minus l1 + fine-tune, same seed | per seed | seeds |",
        "|---|---|---|---|---|---|---|",
    ]
    lams = sorted({float(k[len("crsfp_lambda"):]) for k in rows if k.startswith("crsfp_lambda")})
    for method in [*METHODS, *(crsfp_key(lam) for lam in lams)]:
        if method not in rows:
            continue
        rs = rows[method]
        accs = [100 * r["accuracy"] for r in rs]
        std = statistics.stdev(accs) if len(accs) > 1 else float("nan")
        label = LABELS.get(method) or f"CR-SFP, lambda {method[len('crsfp_lambda'):]}"
        if method == "han":
            label += f", sparsity {statistics.mean(r['sparsity'] for r in rs):.3f}"
        elif method == "scratch-b":
            label += f", {rs[0]['epochs']} epochs"
        elif rs[0].get("removed_blocks"):
            label += f", {statistics.mean(len(r['removed_blocks']) for r in rs):g} blocks removed"
        diffs = [100 * r["accuracy"] - l1_by_seed[r["seed"]] for r in rs if r["seed"] in l1_by_seed]
        paired = "—" if method == "l1" or len(diffs) < 2 else \
            f"{statistics.mean(diffs):+.2f} ± {statistics.stdev(diffs):.2f}"
        lines.append(f"| {label} | {statistics.mean(r['flops_ratio'] for r in rs):.3f} | "
                     f"{statistics.mean(r['params_ratio'] for r in rs):.3f} | {statistics.mean(accs):.2f} ± {std:.2f} | "
                     f"{paired} | {' / '.join(f'{a:.2f}' for a in accs)} | {len(accs)} |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--dense-epochs", type=int, default=8)
    parser.add_argument("--prune-epochs", type=int, default=6)
    parser.add_argument("--train-subset", type=int, default=2048)
    parser.add_argument("--test-subset", type=int, default=2000)
    parser.add_argument("--budget", default="flops=0.5")
    parser.add_argument("--align", type=int, default=1)
    parser.add_argument("--han-sparsity", type=float, default=0.9)
    parser.add_argument("--methods", nargs="+", default=list(METHODS), choices=METHODS,
                        help="what to run, in this order (the dense start always runs first)")
    parser.add_argument("--lambdas", type=float, nargs="+", default=[1.0], help="CR-SFP consistency weights")
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--progress", action="store_true")
    parser.add_argument("--table-only", action="store_true", help="print the table from finished seeds")
    parser.add_argument("--out", default="runs/fmnist_methods")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    root = Path(args.out)
    if not args.table_only:
        check_schedule(root, args)
        data = open_data("fashion-mnist", input_shape=(1, 1, 28, 28), train_subset=args.train_subset,
                         test_subset=args.test_subset)
        for seed in args.seeds:
            run_seed(seed, args, data)
    print(table(root))


if __name__ == "__main__":
    main()
