"""Read what a report shows: model folders of `linctl train` (config, metrics log, `linctl eval` JSON) and
`linctl bench --json` files. Anything else is refused in one line naming the path."""

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from linctl.bench.run import Report
from linctl.errors import InputError
from linctl.evaluate.run import EVAL_ALL_FILE, EVAL_FILE, RECORD_KEYS
from linctl.train import checkpoint
from linctl.train.logging import METRICS_FILE, read_metrics

WHAT_IS_A_RUN = "give a `linctl train` model folder or a `linctl bench --json` file"


@dataclass(frozen=True)
class Evaluation:
    """One `linctl eval` result of a run: which file it came from and what it says."""

    name: str  # what the result is: "newest checkpoint", "best of 4 checkpoints" or the file's name
    path: Path
    result: dict[str, Any]

    @property
    def metrics(self) -> dict[str, float]:
        """The numbers of the result, by name (accuracy, ppl, bleu…)."""
        return {
            key: float(value)
            for key, value in self.result.items()
            if key not in RECORD_KEYS and isinstance(value, int | float)
        }


@dataclass(frozen=True)
class TrainRun:
    """A model folder: the run config of its newest checkpoint, its metrics log and its evaluations."""

    path: Path
    config: dict[str, Any]
    records: list[dict[str, Any]]
    evaluations: list[Evaluation]

    @property
    def task(self) -> str:
        return str(self.config["task"]["kind"])


@dataclass(frozen=True)
class BenchRun:
    """A `linctl bench --json` report."""

    path: Path
    report: Report


def read_runs(paths: list[Path]) -> list[TrainRun | BenchRun]:
    """Read each of ``paths`` as a model folder or a bench report, in the order given."""
    return [_read(Path(path)) for path in paths]


def _read(path: Path) -> TrainRun | BenchRun:
    if path.is_dir():
        return _train_run(path)
    if path.is_file():
        data = read_json(path)
        if _is_result(data):
            raise InputError(
                f"{path}: a `linctl eval` result, not a run; give its model folder (every eval*.json in it "
                "is read), writing the result there with --json MODEL_DIR/eval-NAME.json"
            )
        try:
            return BenchRun(path, Report.model_validate(data))
        except ValidationError as exc:
            problem = exc.errors()[0]
            where = ".".join(str(part) for part in problem["loc"]) or "the top level"
            if isinstance(data, dict) and {"schema", "rows"} <= data.keys():
                raise InputError(
                    f"{path}: a `linctl bench --json` report that this linctl cannot read ({where}: "
                    f"{problem['msg']}); run its bench command again to rewrite it"
                ) from None
            raise InputError(
                f"{path}: not a `linctl bench --json` report ({where}: {problem['msg']}); {WHAT_IS_A_RUN}"
            ) from None
    raise InputError(f"{path}: no such file or folder; {WHAT_IS_A_RUN}")


def _train_run(folder: Path) -> TrainRun:
    newest = checkpoint.latest(folder)
    if newest is None:
        raise InputError(f"{folder}: not a run (no checkpoint-NNNNNNNN/ folder in it); {WHAT_IS_A_RUN}")
    return TrainRun(folder, checkpoint.read_config(newest), _records(folder), _evaluations(folder, newest))


def _records(folder: Path) -> list[dict[str, Any]]:
    """Return the records of the run's metrics log; a damaged log is refused."""
    try:
        return read_metrics(folder)
    except json.JSONDecodeError as exc:
        raise InputError(
            f"{folder / METRICS_FILE}: a line is not JSON ({exc.msg}); run `linctl train` on the folder "
            "again to rewrite it"
        ) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise _unreadable(folder / METRICS_FILE, exc) from None


def _evaluations(folder: Path, newest: Path) -> list[Evaluation]:
    """Return the run's `linctl eval` results: the newest checkpoint's, the best of every checkpoint's,
    and those written into the model folder under other names with ``--json`` (e.g. one per split)."""
    found = []
    if (newest / EVAL_FILE).is_file():
        found.append(Evaluation("newest checkpoint", newest / EVAL_FILE, _result(newest / EVAL_FILE)))
    every = folder / EVAL_ALL_FILE
    if every.is_file():
        data = read_json(every)
        if not isinstance(data, dict) or not isinstance(data.get("checkpoints"), list):
            raise InputError(f"{every}: not a `linctl eval --all-checkpoints` file (no checkpoints list)")
        name = f"best of {len(data['checkpoints'])} checkpoints"
        found.append(Evaluation(name, every, _checked(every, data.get("best"))))
    for path in sorted(folder.glob("eval*.json")):
        if path.name not in (EVAL_FILE, EVAL_ALL_FILE):
            found.append(Evaluation(path.name, path, _result(path)))
    return found


def _result(path: Path) -> dict[str, Any]:
    return _checked(path, read_json(path))


def _checked(path: Path, result: Any) -> dict[str, Any]:
    """Return ``result`` when it is one checkpoint's `linctl eval` result, else refuse ``path``."""
    if not _is_result(result):
        raise InputError(f"{path}: not a `linctl eval` result (no step and task); evaluate the run again")
    return result


def _is_result(data: Any) -> bool:
    return isinstance(data, dict) and {"step", "task"} <= data.keys()


def read_json(path: Path) -> Any:
    """Return the JSON of ``path``; an unreadable or malformed file is an InputError naming it."""
    try:
        return json.loads(_text(path))
    except json.JSONDecodeError as exc:
        raise InputError(f"{path}: not valid JSON (line {exc.lineno}: {exc.msg})") from None


def _text(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise _unreadable(path, exc) from None


def _unreadable(path: Path, exc: OSError | UnicodeDecodeError) -> InputError:
    said = exc.strerror if isinstance(exc, OSError) else "not UTF-8 text"
    return InputError(f"{path}: cannot be read ({said})")
