"""`python -m linctl.bench.worker RESULT.json`: measure the case given as JSON on stdin, one per process.

`python -m linctl.bench.worker --serve` keeps its case: it reads the case as the first line of stdin,
answers with the measurement (no times) as one JSON line on stdout, then times the case's repeats for
every further line it reads, answering each with a line, until its input ends. Anything else the case
prints goes to stderr, so that stdout carries the answers alone.
"""

import os
import sys
from pathlib import Path

import torch

from linctl.atomic import write_text_atomic
from linctl.bench.case import Case, Result
from linctl.bench.measure import measure, measured
from linctl.errors import LinctlError


def main() -> None:
    if sys.argv[1:] == ["--serve"]:
        serve()
        return
    out = Path(sys.argv[1])
    case = Case.model_validate_json(sys.stdin.read())
    use_threads(case)
    try:
        result = measure(case)
    except LinctlError as err:  # a case this configuration cannot run, e.g. a peer without the option
        result = Result(status="error", message=str(err))
    write_text_atomic(out, result.model_dump_json())


def serve() -> None:
    answers = os.fdopen(os.dup(1), "w", buffering=1)
    os.dup2(2, 1)  # what the case prints must not interleave with the answers
    case = Case.model_validate_json(sys.stdin.readline())
    use_threads(case)
    try:
        for result in measured(case):
            answers.write(result.model_dump_json() + "\n")
            if result.status != "ok" or not sys.stdin.readline():
                return
    except LinctlError as err:
        answers.write(Result(status="error", message=str(err)).model_dump_json() + "\n")


def use_threads(case: Case) -> None:
    if case.threads is not None:
        torch.set_num_threads(case.threads)


if __name__ == "__main__":
    main()
