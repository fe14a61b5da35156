"""Kill every writer anywhere and run it again at once: the output is, byte for byte, that of a run never
interrupted, and nothing of the killed run (temporary file, claim, worker process) remains.

Each writer runs once uninterrupted (the reference), then again into fresh folders, each stopped once:

* ``SIGKILL`` at ``POINTS`` moments spread evenly over the stretch in which the reference wrote: from the
  moment its output folder appeared to its exit (before that a run has written nothing to lose). The
  machine's load changes while the suite runs; a run that ends before its moment (faster than the
  reference) makes the stretch that run's and is tried again, so that every moment stops a running
  process (``MISSES`` tries at most);
* ``SIGKILL`` as a process enters a rename (``strace -f`` injects the signal there: the file is complete
  under its temporary name and not yet in place). strace counts each process's calls of each rename
  syscall, so the kill comes at the n-th ``rename`` (or ``renameat``, ``renameat2``) of every process
  at once, for every n up to the most calls one process made. Each rename of the main process is thus
  hit, unless a worker reaches its own n-th first: that worker dies, and the run ends with its one-line
  error;
* ``SIGINT`` to the process group (a terminal's Ctrl-C) and ``SIGTERM`` to the process (``kill PID``) at
  ``POINTS_GRACEFUL`` moments: exit 130 or 143 and the one line saying so, no traceback.

After each stop the same command runs again, to the end, and every output file is compared with the
reference's. Training output is compared without its wall-clock figures (``tokens_per_s``). A compile
package is compared by its files, config and report, without timings and the package's size: the
AOTInductor shared library inside ``model.pt2`` is not byte-reproducible (nor of one size) even between
two uninterrupted compiles.
"""

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
POINTS = 20  # SIGKILL moments per writer
POINTS_GRACEFUL = 4  # SIGINT and SIGTERM moments per writer
MISSES = 4  # runs that may end before the stop of one moment comes
RENAMES = "rename,renameat,renameat2"
ENV = {**os.environ, "LINCTL_PROGRESS": "0", "PYTHONPATH": str(REPO)}

pytestmark = [
    pytest.mark.slow,
    # Its inputs are the first 2400 lines of WikiText-2 valid, its train file and 1200 SST-2 sentences:
    # more than tests/data holds (601 lines of valid would leave its valid split empty).
    pytest.mark.full_data("wikitext-2/valid.txt", "wikitext-2/train.txt.gz", "glue/SST-2/train.tsv"),
    pytest.mark.skipif(
        not sys.platform.startswith("linux"), reason="reads /proc; workers die with their parent"
    ),
]


def every_byte(out: Path) -> dict[str, object]:
    """Every file under ``out``, with the folder's own path in them (metadata, manifests, configs) written
    as ``OUT``; a manifest's sha256 list is compared as names, the files themselves being compared."""
    files: dict[str, object] = {}
    for path in sorted(p for p in out.rglob("*") if p.is_file()):
        content = path.read_bytes().replace(str(out).encode(), b"OUT")
        if path.name == "manifest.json":
            manifest = json.loads(content)
            content = {**manifest, "files": sorted(manifest.get("files", {}))}
        files[str(path.relative_to(out))] = content
    return files


@dataclass
class Writer:
    """A linctl command that writes ``out``, from the ``inputs`` fixture's files; ``compared`` turns an
    output folder into what must match."""

    name: str
    recipe: Callable[[dict[str, Path], Path], list[object]]  # (inputs, out) -> the command's arguments
    compared: Callable[[Path], dict[str, object]] = every_byte
    inputs: dict[str, Path] = field(default_factory=dict)

    def args(self, out: Path) -> list[object]:
        return self.recipe(self.inputs, out)


def without_timings(out: Path) -> dict[str, object]:
    """Training output: every byte but the wall-clock figures of metrics.jsonl."""
    files = every_byte(out)
    for name, content in files.items():
        if name.endswith("metrics.jsonl"):
            records = [json.loads(line) for line in content.decode().splitlines()]
            files[name] = [{k: v for k, v in r.items() if k != "tokens_per_s"} for r in records]
    return files


def compile_package(out: Path) -> dict[str, object]:
    """A compile package: its files, config and report, with the folder's path as ``OUT``, and without
    the stage times and the package's size (see the module's docstring)."""
    package = out / "compiled"
    report = json.loads((package / "compile-report.json").read_text().replace(str(out), "OUT"))
    del report["stage_s"], report["package"]["bytes"]
    return {
        "files": sorted(p.name for p in package.iterdir()),
        "config": (package / "config.yaml").read_text(),
        "report": report,
    }


@pytest.fixture(scope="module")
def inputs(tmp_path_factory, data_dir, tiny_shards) -> dict[str, Path]:
    """Small real inputs: WikiText-2 valid (a WikiText-style file, two part files), an SST-2 excerpt."""
    root = tmp_path_factory.mktemp("inputs")
    lines = (data_dir / "wikitext-2" / "valid.txt").read_text(encoding="utf-8").splitlines(keepends=True)
    (root / "wikitext.txt").write_text("".join(lines[:900]), encoding="utf-8")
    (root / "wikitext").mkdir()
    (root / "wikitext" / "train.txt").write_text("".join(lines[:2000]), encoding="utf-8")
    (root / "wikitext" / "valid.txt").write_text("".join(lines[2000:2400]), encoding="utf-8")
    for i, part in enumerate((lines[:500], lines[500:1000])):
        (root / f"part-{i}").write_text("".join(line.strip() + "\n" for line in part), encoding="utf-8")
    (root / "meta.txt").write_text(f"{root / 'part-0'}\n{root / 'part-1'}\n", encoding="utf-8")
    sst2 = root / "SST-2"
    sst2.mkdir()
    train = (data_dir / "glue" / "SST-2" / "train.tsv").read_text(encoding="utf-8").splitlines(keepends=True)
    (sst2 / "train.tsv").write_text("".join(train[:1201]), encoding="utf-8")
    shutil.copy(data_dir / "glue" / "SST-2" / "dev.tsv", sst2)
    return {"root": root, "vocab": data_dir / "bert-vocab" / "bert-base-uncased-vocab.txt", **tiny_shards}


TINY = REPO / "configs" / "mlm" / "tiny.yaml"


def mlm(inputs: dict[str, Path], out: Path, workers: int) -> list[object]:
    return ["prepare", "mlm", "--metadata-files", inputs["root"] / "meta.txt",
            "--vocab-file", inputs["vocab"], "--do-lower-case", "--max-seq-length", 64,
            "--single-sentence-per-line", "--multiple-docs-in-single-file", "--dupe-factor", 2,
            "--num-output-files", 4, "--seed", 3, "--workers", workers, "--output-dir", out]  # fmt: skip


def train(inputs: dict[str, Path], out: Path, checkpoint_every: int) -> list[object]:
    return ["train", "--config", TINY, "--set", f"task.train_dir={inputs['train']}",
            "--set", f"task.eval_dir={inputs['eval']}", "--set", "train.steps=24",
            "--set", "train.deterministic=true", "--set", f"train.checkpoint_every={checkpoint_every}",
            "--model-dir", out]  # fmt: skip


# fmt: off
WRITERS = {w.name: w for w in [
    Writer("prepare wikicorpus", lambda i, out: [
        "prepare", "wikicorpus", "--input", i["root"] / "wikitext.txt", "--output-dir", out,
        "--num-parts", 3, "--eval-articles", 2, "--workers", 2]),
    Writer("prepare vocab", lambda i, out: [
        "prepare", "vocab", "--metadata-files", i["root"] / "meta.txt", "--output-dir", out,
        "--vocab-size", 600, "--do-lower-case", "--workers", 2]),
    Writer("prepare mlm --workers 1", lambda i, out: mlm(i, out, workers=1)),
    Writer("prepare mlm --workers 2", lambda i, out: mlm(i, out, workers=2)),
    Writer("prepare wikitext", lambda i, out: [
        "prepare", "wikitext", "--input", i["root"] / "wikitext", "--output-dir", out]),
    Writer("prepare glue", lambda i, out: [
        "prepare", "glue", "--task", "SST-2", "--input", i["root"] / "SST-2", "--vocab-file", i["vocab"],
        "--do-lower-case", "--max-seq-length", 64, "--output-dir", out]),
    Writer("train, checkpoints due", lambda i, out: train(i, out, checkpoint_every=4), without_timings),
    Writer("train, last step only", lambda i, out: train(i, out, checkpoint_every=0), without_timings),
    Writer("compile", lambda i, out: ["compile", "--config", TINY, "--set", f"model_dir={out}"],
           compile_package),
]}
# fmt: on


def linctl(args: list[object], trace: list[str] = ()) -> list[str]:
    return [*trace, sys.executable, "-m", "linctl", *map(str, args)]


def start(command: list[str], log: Path) -> subprocess.Popen:
    with log.open("w") as err:
        return subprocess.Popen(
            command, env=ENV, stdout=subprocess.DEVNULL, stderr=err, start_new_session=True
        )


def run(command: list[str], log: Path) -> None:
    proc = start(command, log)
    assert proc.wait() == 0, f"{' '.join(command)} exited {proc.returncode}: {log.read_text()[-2000:]}"


def group_alive(group: int) -> list[int]:
    """Return the live processes of process group ``group`` (zombies have exited)."""
    alive = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[2]) == group and fields[0] != "Z":
            alive.append(int(stat.parent.name))
    return alive


def wait_group_gone(group: int) -> None:
    deadline = time.monotonic() + 10
    while group_alive(group) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not group_alive(group), f"processes of the stopped run live on: {group_alive(group)}"


def leftovers(out: Path) -> list[str]:
    return [
        str(p.relative_to(out))
        for p in out.rglob("*")
        if ".tmp-" in p.name or p.name in (".linctl-pending.json", ".work")
    ]


@dataclass
class Reference:
    compared: dict[str, object]
    writing: tuple[float, float]  # seconds after start: the output folder appeared, the run exited
    renames: Counter[str]  # per rename syscall: the most calls one process made
    main_renames: Counter[str]  # per rename syscall: the main process's calls


@pytest.fixture(scope="module")
def references(inputs, tmp_path_factory) -> Callable[[str], Reference]:
    """``references(name)``: the writer's uninterrupted run (made once): its output, when it wrote, and how
    many renames its process made."""
    root = tmp_path_factory.mktemp("references")
    made: dict[str, Reference] = {}

    def reference(name: str) -> Reference:
        if name not in made:
            made[name] = uninterrupted(replace(WRITERS[name], inputs=inputs), root / name.replace(" ", "_"))
        return made[name]

    return reference


def uninterrupted(writer: Writer, out: Path) -> Reference:
    """Run ``writer`` into ``out`` and again elsewhere (a warm machine: its times set the kill moments),
    then once more under strace counting its renames; all three outputs must agree."""
    runs = [timed_run(writer, folder) for folder in (out, out.parent / f"{out.name}-again")]
    traced, calls = out.parent / f"{out.name}-traced", out.parent / f"{out.name}.strace"
    trace = ["strace", "-f", "-qq", "-o", str(calls), "-e", f"trace=execve,{RENAMES}"]
    run(linctl(writer.args(traced), trace), out.parent / f"{traced.name}.log")
    compared = writer.compared(out)
    for other in (out.parent / f"{out.name}-again", traced):
        assert writer.compared(other) == compared  # the suite's premise: every run gives one output
    return Reference(compared, min(runs, key=lambda span: span[1]), *renames(calls))


def renames(calls: Path) -> tuple[Counter[str], Counter[str]]:
    """From ``strace -f`` output: per rename syscall, the most calls one process made, and the calls of the
    main process (the first to exec)."""
    per_process: dict[str, Counter[str]] = {}
    main = None
    for line in calls.read_text().splitlines():
        call = re.match(r"(\d+) +(\w+)\(", line)
        if call is None:
            continue  # a signal, an exit or a resumed call
        pid, name = call.groups()
        if name == "execve":
            main = main or pid
        else:
            per_process.setdefault(pid, Counter())[name] += 1
    most = Counter()
    for counts in per_process.values():
        most |= counts  # the larger count of each syscall
    return most, per_process.get(main, Counter())


def timed_run(writer: Writer, out: Path) -> tuple[float, float]:
    """Run ``writer`` into ``out``; return when (seconds after the start) the folder appeared and it ended."""
    log = out.parent / f"{out.name}.log"
    begun = time.monotonic()
    proc = start(linctl(writer.args(out)), log)
    appeared = None
    while proc.poll() is None:
        if appeared is None and out.exists():
            appeared = time.monotonic() - begun
        time.sleep(0.005)
    assert proc.returncode == 0, log.read_text()
    return appeared or 0.0, time.monotonic() - begun


Stop = Callable[[subprocess.Popen, float], None]  # (the run, when it started): stops it, or lets it end


def stop_and_rerun(writer: Writer, reference: Reference, out: Path, command: list[str], stop: Stop,
                   fault: str, tried: dict) -> tuple[subprocess.Popen, float]:  # fmt: skip
    """Start ``command``, ``stop`` it, rerun ``writer`` at once, check that nothing of the stopped run lives
    on and that the output is the reference's. Return the stopped run and how long it ran."""
    log = out.parent / f"{out.name}.log"
    begun = time.monotonic()
    proc = start(command, log)
    stop(proc, begun)
    proc.wait()
    took = time.monotonic() - begun
    counts = tried[writer.name, fault]
    counts[0] += 1
    counts[1] += proc.returncode != 0
    run(linctl(writer.args(out)), out.parent / f"{out.name}-rerun.log")  # at once, as a user would
    wait_group_gone(proc.pid)
    assert not leftovers(out), f"{fault}: left {leftovers(out)}"
    assert writer.compared(out) == reference.compared, f"{fault}: the rerun differs from the reference"
    counts[2] += 1
    return proc, took


def running_at(proc: subprocess.Popen, begun: float, moment: float) -> bool:
    """Wait until ``moment`` seconds after ``begun``; return whether ``proc`` still runs then."""
    try:
        proc.wait(timeout=max(begun + moment - time.monotonic(), 0))
    except subprocess.TimeoutExpired:
        return True
    return False


@dataclass
class Pace:
    """``count`` moments spread evenly over the stretch in which a writer's runs write."""

    writing: tuple[float, float]  # seconds after start: the output folder appears, the run exits
    count: int

    def at(self, i: int) -> float:
        first, last = self.writing
        return first + (last - first) * (i + 0.5) / self.count

    def ended_at(self, took: float) -> None:
        """A run ended after ``took`` seconds, before its moment: runs are that fast now."""
        first, last = self.writing
        self.writing = (first * took / last, took)


def at_each_moment(pace: Pace, stop_at: Callable[[float, Path], tuple[subprocess.Popen, float]],
                   tmp_path: Path, name: str) -> None:  # fmt: skip
    """``stop_at(moment, out)`` for each of ``pace``'s moments, again while the run ends first."""
    for i in range(pace.count):
        for miss in range(MISSES + 1):
            proc, took = stop_at(pace.at(i), tmp_path / f"{name}-{i}-{miss}")
            if proc.returncode != 0:
                break
            pace.ended_at(took)
        else:
            pytest.fail(f"moment {i} of {pace.count}: the run ended first {MISSES + 1} times")


@pytest.mark.parametrize("name", list(WRITERS))
def test_sigkill_anywhere_then_rerun_gives_the_same_output(name, inputs, references, tried, tmp_path):
    writer, reference = replace(WRITERS[name], inputs=inputs), references(name)

    def kill_at(moment: float, out: Path) -> tuple[subprocess.Popen, float]:
        def kill(proc, begun):
            if running_at(proc, begun, moment):
                os.kill(proc.pid, signal.SIGKILL)

        return stop_and_rerun(
            writer, reference, out, linctl(writer.args(out)), kill, "SIGKILL, moment", tried
        )

    at_each_moment(Pace(reference.writing, POINTS), kill_at, tmp_path, "kill")


@pytest.mark.parametrize("name", list(WRITERS))
def test_sigkill_at_each_rename_then_rerun_gives_the_same_output(name, inputs, references, tried, tmp_path):
    writer, reference = replace(WRITERS[name], inputs=inputs), references(name)
    assert reference.main_renames.total() > 0
    for syscall, most in sorted(reference.renames.items()):
        for n in range(1, most + 1):
            out = tmp_path / f"{syscall}-{n}"
            inject = ["strace", "-f", "-qq", "-o", "/dev/null", "-e", f"trace={syscall}",
                      "-e", f"inject={syscall}:signal=KILL:when={n}"]  # fmt: skip
            proc, _ = stop_and_rerun(writer, reference, out, linctl(writer.args(out), inject),
                                     lambda p, b: None, "SIGKILL, rename", tried)  # fmt: skip
            stderr = (out.parent / f"{out.name}.log").read_text()
            killed = proc.returncode in (-signal.SIGKILL, 128 + signal.SIGKILL)
            worker_died = proc.returncode == 1 and stderr.startswith(
                "error: a worker process of this run died"
            )
            assert killed or worker_died or (proc.returncode == 0 and n > reference.main_renames[syscall]), (
                f"{syscall} {n}: exit {proc.returncode}, {stderr}"
            )


@pytest.mark.parametrize("name", list(WRITERS))
@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_ctrl_c_or_sigterm_anywhere_exits_in_one_line_and_the_rerun_resumes(
    name, signum, inputs, references, tried, tmp_path
):
    writer, reference = replace(WRITERS[name], inputs=inputs), references(name)
    word, code = ("interrupted", 130) if signum == signal.SIGINT else ("terminated", 143)

    def stop_at(moment: float, out: Path) -> tuple[subprocess.Popen, float]:
        def stop(proc, begun):
            if running_at(proc, begun, moment):
                if signum == signal.SIGINT:
                    os.killpg(proc.pid, signum)  # a terminal sends Ctrl-C to the whole foreground group
                else:
                    os.kill(proc.pid, signum)

        proc, took = stop_and_rerun(
            writer, reference, out, linctl(writer.args(out)), stop, signum.name, tried
        )
        stderr = (out.parent / f"{out.name}.log").read_text()
        # Killed by the signal itself: Python's handler was not in place, the signal having come before
        # linctl's first module ran or as the finished run shut down (a shell shows 128 + signum then too).
        if proc.returncode == -signum:
            assert "Traceback" not in stderr, stderr
        elif proc.returncode != 0:  # else it had finished before the signal came: tried again
            assert proc.returncode == code, stderr
            assert "Traceback" not in stderr
            assert [line for line in stderr.splitlines() if line.startswith(word)] == [
                f"{word}: finished output files are kept; run the same command again to resume"
            ]
        return proc, took

    at_each_moment(Pace(reference.writing, POINTS_GRACEFUL), stop_at, tmp_path, word)


def test_prepare_mlm_killed_at_half_time_and_rerun_at_once_twenty_times(data_dir, tried, tmp_path):
    """The reported case: `prepare mlm` of WikiText-2 train (4 part files, bert-base-uncased, two workers),
    SIGKILL at half its uninterrupted time, the same command at once; twenty times."""
    corpus = tmp_path / "corpus"
    split = ["prepare", "wikicorpus", "--input", data_dir / "wikitext-2" / "train.txt.gz",
             "--output-dir", corpus, "--num-parts", 4, "--eval-articles", 0]  # fmt: skip
    run(linctl(split), tmp_path / "corpus.log")
    vocab = data_dir / "bert-vocab" / "bert-base-uncased-vocab.txt"
    writer = Writer("prepare mlm, WikiText-2 train", lambda _, out: [
        "prepare", "mlm", "--metadata-files", corpus / "metadata.txt", "--vocab-file", vocab,
        "--do-lower-case", "--max-seq-length", 128, "--dupe-factor", 2, "--num-output-files", 4,
        "--seed", 3, "--multiple-docs-in-single-file", "--single-sentence-per-line", "--workers", 2,
        "--output-dir", out])  # fmt: skip
    reference = uninterrupted(writer, tmp_path / "reference")
    half = reference.writing[1] / 2

    def kill(proc, begun):
        if running_at(proc, begun, half):
            os.kill(proc.pid, signal.SIGKILL)

    for i in range(20):
        out = tmp_path / f"kill-{i}"
        stop_and_rerun(writer, reference, out, linctl(writer.args(out)), kill, "SIGKILL, half time", tried)
