"""`linctl eval`: metrics of a checkpoint (or of every one) on its task's evaluation data, as a table and
JSON; or predictions for a test set, as a GLUE submission file."""

import json
from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from linctl.cli.options import (
    ConfigOpt,
    DeviceOpt,
    ModelDirOpt,
    OverridesOpt,
    print_summary,
    run_overrides,
    stdout,
)
from linctl.config.load import apply_overrides, load_config, validate
from linctl.errors import ConfigError, InputError


def evaluate(
    config: ConfigOpt = None,
    checkpoint: Annotated[
        Path | None, typer.Option(help="A checkpoint folder [default: the newest in the model folder].")
    ] = None,
    model_dir: ModelDirOpt = None,
    all_checkpoints: Annotated[
        bool,
        typer.Option(
            "--all-checkpoints", help="Evaluate every checkpoint of the model folder; mark the best."
        ),
    ] = False,
    predict: Annotated[
        Path | None,
        typer.Option(help="A `prepare glue` split folder (e.g. test) to predict, as a GLUE submission TSV."),
    ] = None,
    context_window: Annotated[
        int | None,
        typer.Option(
            min=0,
            help="Language models: score each block's new tokens with up to this many tokens of context "
            "before it (fairseq eval-lm's --context-window) [default: the config's task.context_window, 0].",
        ),
    ] = None,
    metric: Annotated[
        str | None,
        typer.Option(
            help="Show only this metric (e.g. ppl), with how it was computed; translation: ppl, loss or "
            "accuracy decodes nothing [default: all]."
        ),
    ] = None,
    bleu_tokenize: Annotated[
        str | None,
        typer.Option(
            metavar="TOKENIZE",
            help="Translation: sacrebleu's tokenizer for BLEU: 13a, intl, none or char [default: the "
            "config's "
            "task.bleu_tokenize, 13a].",
        ),
    ] = None,
    beam: Annotated[
        int | None,
        typer.Option(
            min=1, help="Translation: beam size, 1 for greedy [default: the config's task.decoding.beam]."
        ),
    ] = None,
    hypotheses: Annotated[
        Path | None,
        typer.Option(
            help="Translation: write the detokenized hypotheses here, one line per pair [default: the "
            "config's task.hypotheses_file; unset, none are written]."
        ),
    ] = None,
    set_: OverridesOpt = None,
    device: DeviceOpt = None,
    json_file: Annotated[
        Path | None,
        typer.Option(
            "--json",
            help="Write the metrics as JSON to this file "
            "[default: CHECKPOINT/eval.json; with --all-checkpoints, MODEL_DIR/eval-all.json].",
        ),
    ] = None,
    tsv: Annotated[
        Path | None,
        typer.Option(
            "--tsv", help="Write the --predict predictions to this file [default: CHECKPOINT/TASK.tsv]."
        ),
    ] = None,
    # The old name of --json and --tsv (it named whichever file the run wrote): accepted, not shown.
    output: Annotated[Path | None, typer.Option(hidden=True)] = None,
) -> None:
    """Evaluate checkpoints: perplexity for language models (fairseq's eval-lm protocol) and MLM runs,
    GLUE metrics for classifiers, BLEU and chrF (sacrebleu, signature printed) for translation."""
    from linctl.atomic import check_writable_file, write_text_atomic
    from linctl.evaluate.run import (
        EVAL_ALL_FILE,
        EVAL_FILE,
        evaluate_checkpoints,
        predict_checkpoint,
        write_all,
        write_metrics,
    )
    from linctl.train import checkpoint as checkpoints
    from linctl.train.config import RunConfig

    if all_checkpoints and (checkpoint is not None or predict is not None):
        raise ConfigError(
            "--all-checkpoints evaluates a model folder: give it without --checkpoint or --predict"
        )
    for name, path in (
        ("--json", json_file),
        ("--tsv", tsv),
        ("--output", output),
        ("--hypotheses", hypotheses),
    ):
        if path is not None:
            check_writable_file(path, name)
    overrides = run_overrides(set_, model_dir, device)
    overrides += [f"task.context_window={context_window}"] if context_window is not None else []
    overrides += [f"task.bleu_tokenize={bleu_tokenize}"] if bleu_tokenize is not None else []
    overrides += [f"task.decoding.beam={beam}"] if beam is not None else []
    overrides += [f"task.hypotheses_file={hypotheses.resolve()}"] if hypotheses is not None else []
    cfg = load_config(config, RunConfig, overrides) if config else None
    folder = model_dir or (cfg.model_dir if cfg else None)
    if checkpoint is not None:
        found = [checkpoint]
    elif folder is None:
        raise ConfigError("give --checkpoint, --model-dir or a --config whose model_dir has checkpoints")
    else:
        found = checkpoints.checkpoints(folder) if all_checkpoints else [checkpoints.latest(folder)]
        if not found or found[-1] is None:
            raise InputError(f"{folder}: no complete checkpoint (checkpoint-NNNNNNNN/) to evaluate")
    for path in found:
        if not Path(path).is_dir():
            raise InputError(f"--checkpoint {path}: no such folder")
    if cfg is None:
        saved = apply_overrides(checkpoints.read_config(found[-1]), overrides)
        cfg = validate(RunConfig, saved, f"{found[-1]}/config.yaml: ")

    if predict is not None:
        rows = predict_checkpoint(cfg, Path(found[0]), predict)
        opts = json.loads((Path(predict) / "manifest.json").read_text())["options"]
        suffix = {"test_matched": "-m", "test_mismatched": "-mm"}.get(opts["split"], "")  # GLUE's MNLI names
        target = tsv or output or Path(found[0]) / f"{opts['task']}{suffix}.tsv"
        write_text_atomic(target, "index\tprediction\n" + "".join(f"{i}\t{p}\n" for i, p in rows))
        print_summary(f"predict {predict} → {target}", {"examples": len(rows), "checkpoint": str(found[0])})
        return

    results, best = evaluate_checkpoints(cfg, [Path(path) for path in found], metric)
    if not all_checkpoints:
        target = json_file or output or Path(found[0]) / EVAL_FILE
        write_metrics(target, results[0])
        shown = {k: v for k, v in results[0].items() if k not in ("checkpoint", "task_config")}
        print_summary(f"eval {found[0]} → {target}", _only(shown, metric))
        return
    for result in results:
        write_metrics(Path(result["checkpoint"]) / EVAL_FILE, result)
    target = json_file or output or Path(folder) / EVAL_ALL_FILE  # type: ignore[arg-type]
    write_all(target, results, best)
    if metric is not None:
        _only(results[0], metric)  # a metric the task does not report is refused before the table
    stdout.print(_table(results, best, f"eval {folder} → {target}", metric))
    if "protocol" in results[0]:
        stdout.print(f"protocol: {results[0]['protocol']}", soft_wrap=True)


def _only(result: dict, metric: str | None) -> dict:
    """Return ``result`` with only ``metric`` among the metrics (step, task and protocol stay)."""
    from linctl.evaluate.run import RECORD_KEYS

    if metric is None:
        return result
    kept = {key: value for key, value in result.items() if key in ("step", "task", "protocol")}
    if metric not in result or metric in RECORD_KEYS:
        names = [key for key in result if key not in RECORD_KEYS]
        raise ConfigError(f"--metric {metric}: this task reports {', '.join(names)}")
    return kept | {metric: result[metric]}


def _table(results: list[dict], best: int, title: str, metric: str | None) -> Table:
    from linctl.evaluate.run import RECORD_KEYS

    names = [key for key in results[0] if key not in RECORD_KEYS]
    names = [metric] if metric is not None else names
    table = Table(title=title, title_justify="left")
    table.add_column("step", justify="right")
    for name in names:
        table.add_column(name, justify="right")
    table.add_column("")
    for index, result in enumerate(results):
        cells = [f"{result.get(name, float('nan')):.4f}" for name in names]
        table.add_row(f"{result['step']:,}", *cells, "best" if index == best else "")
    return table
