"""`python -m linctl.bench.worker RESULT.json`: measure the case given as JSON on stdin, one per process."""

import sys
from pathlib import Path

from linctl.atomic import write_text_atomic
from linctl.bench.case import Case, Result
from linctl.bench.measure import measure
from linctl.errors import LinctlError


def main() -> None:
    out = Path(sys.argv[1])
    case = Case.model_validate_json(sys.stdin.read())
    try:
        result = measure(case)
    except LinctlError as err:  # a case this configuration cannot run, e.g. a peer without the option
        result = Result(status="error", message=str(err))
    write_text_atomic(out, result.model_dump_json())


if __name__ == "__main__":
    main()
