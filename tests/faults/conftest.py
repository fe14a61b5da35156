"""The fault-injection suite's table: one line per writer and fault, printed after the run."""

from collections import defaultdict

import pytest

# (writer, fault) -> [runs stopped (or let end: a stop that came too late is tried again), stops that came
# while the run ran, reruns identical to the uninterrupted run]
TRIED: defaultdict[tuple[str, str], list[int]] = defaultdict(lambda: [0, 0, 0])


@pytest.fixture(scope="session")
def tried() -> defaultdict[tuple[str, str], list[int]]:
    """What each test tried, for the table: ``tried[writer, fault]`` is [tried, mid-run, identical]."""
    return TRIED


def pytest_terminal_summary(terminalreporter):
    if not TRIED:
        return
    terminalreporter.section("kill anywhere, rerun at once")
    terminalreporter.write_line(f"{'writer':<32}{'fault':<16}{'tried':>6}{'mid-run':>9}{'identical':>11}")
    for (writer, fault), (tried, landed, same) in sorted(TRIED.items()):
        terminalreporter.write_line(f"{writer:<32}{fault:<16}{tried:>6}{landed:>9}{same:>11}")
