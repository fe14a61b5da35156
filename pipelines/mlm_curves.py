"""Eval perplexity curves of MLM runs side by side: a PNG plot and a Markdown table.

    python pipelines/mlm_curves.py OUT.png MODEL_DIR [MODEL_DIR …]

Reads each model folder's ``metrics.jsonl`` (the periodic ``eval_ppl`` records: the curve; the last
``tokens_per_s`` and the mean padding) and, when `linctl eval` has scored the newest checkpoint, its
``eval.json`` (the final perplexity and accuracy on the whole evaluation set). The table compares each
run's final perplexity with the first run's.
"""

import argparse
import json
import statistics
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt

from linctl.evaluate.run import EVAL_FILE
from linctl.train.checkpoint import latest
from linctl.train.logging import read_metrics


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("plot", type=Path)
    parser.add_argument("model_dirs", type=Path, nargs="+")
    args = parser.parse_args()

    figure, axis = plt.subplots(figsize=(7, 4.5))
    rows = []
    for folder in args.model_dirs:
        records = read_metrics(folder)
        curve = [(r["step"], r["eval_ppl"]) for r in records if "eval_ppl" in r]
        rates = [r["tokens_per_s"] for r in records if "tokens_per_s" in r]
        padding = [r["padding"] for r in records if "padding" in r]
        axis.plot(*zip(*curve, strict=True), marker="o", markersize=3, label=folder.name)
        scored = (latest(folder) or folder) / EVAL_FILE
        final = json.loads(scored.read_text()) if scored.exists() else {}
        rows.append(
            {
                "run": folder.name,
                "steps": curve[-1][0],
                "curve ppl": curve[-1][1],
                "eval ppl": final.get("ppl", float("nan")),
                "eval accuracy": final.get("accuracy", float("nan")),
                "tokens/s": statistics.median(rates) if rates else float("nan"),
                "padding": statistics.mean(padding) if padding else float("nan"),
            }
        )
    axis.set(xlabel="optimizer step", ylabel="eval perplexity (masked tokens)", yscale="log")
    axis.grid(True, which="both", alpha=0.3)
    axis.legend()
    figure.tight_layout()
    args.plot.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(args.plot, dpi=120)

    base = rows[0]["eval ppl"]
    print("| run | steps | eval ppl | vs first | masked-token accuracy | tokens/s (median) | padding |")
    print("|---|---:|---:|---:|---:|---:|---:|")
    for row in rows:
        print(
            f"| {row['run']} | {row['steps']:,} | {row['eval ppl']:.2f} | {row['eval ppl'] / base - 1:+.1%} "
            f"| {row['eval accuracy']:.4f} | {row['tokens/s']:,.0f} | {row['padding']:.1%} |"
        )
    print(f"\nplot: {args.plot}")


if __name__ == "__main__":
    main()
