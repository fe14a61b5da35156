"""`prepare merge-manifests`: the shard folders that `prepare mlm --shard-index I --num-shards N` wrote on N
machines, described by one manifest as one shard folder (the shards stay where they are)."""

import os
from pathlib import Path
from typing import Any

from linctl.data.manifest import claimed_output_dir, read_manifest
from linctl.data.mlm_shards import KIND
from linctl.errors import InputError

PER_RUN = ("shard_index", "output_dir", "workers")  # options in which the slices' runs differ


def merge_manifests(parts: list[Path], output_dir: Path) -> dict[str, Any]:
    """Write ``output_dir/manifest.json`` over the shards of every slice in ``parts``; return the summary.

    The slices must be those of one recipe (the same options but for ``shard_index``), each once. The
    manifest lists the shards by their paths relative to ``output_dir``, slice 0's first.
    """
    out = Path(output_dir).resolve()
    found = {Path(part): read_manifest(Path(part), KIND) for part in parts}  # checks every shard's sha256
    first, manifest = next(iter(found.items()))
    recipe = _recipe(manifest, first)
    slices: dict[int, Path] = {}
    for part, theirs in found.items():
        options = _recipe(theirs, part)
        differ = sorted(key for key in recipe.keys() | options.keys() if recipe.get(key) != options.get(key))
        if differ:
            key = differ[0]
            raise InputError(
                f"--input {part}: made with {key}={options.get(key)!r}, but {first} with "
                f"{key}={recipe.get(key)!r}; merge the slices of one `prepare mlm` recipe"
            )
        index = theirs["options"]["shard_index"]
        if index in slices:
            raise InputError(
                f"--input {slices[index]} and {part} are both slice {index}; give each slice once"
            )
        slices[index] = part
    count = recipe["num_shards"]
    missing = [str(index) for index in range(count) if index not in slices]
    if missing:
        raise InputError(
            f"--input: no folder of slice {', '.join(missing)} of {count} (--num-shards {count}); "
            f"give the output folder of every slice"
        )
    ordered = [slices[index] for index in range(count)]
    names: list[str] = []
    counts: dict[str, Any] = {"shards": {}}
    for part in ordered:
        where = os.path.relpath(part.resolve(), out)
        names += [f"{where}/{name}" for name in found[part]["files"]]
        for key, value in found[part]["counts"].items():
            if key == "shards":
                counts["shards"].update({f"{where}/{name}": n for name, n in value.items()})
            else:
                counts[key] = counts.get(key, 0) + value
    options = {
        **recipe,
        "output_dir": str(out),
        "merged_from": [os.path.relpath(p.resolve(), out) for p in ordered],
    }
    with claimed_output_dir(out, KIND, options, owned=[]) as claim:
        status = "already complete" if claim.done is not None else "merged"
        if claim.done is None:
            claim.finish(counts, names)
    return {
        "slices": count,
        "shards": len(names),
        "examples": counts.get("examples", 0),
        "tokens": counts.get("tokens", 0),
        "status": status,
    }


def _recipe(manifest: dict[str, Any], part: Path) -> dict[str, Any]:
    """Return the options of a slice's run that every slice shares."""
    options = manifest["options"]
    if "num_shards" not in options or "merged_from" in options:
        raise InputError(f"--input {part}: not the output of one `prepare mlm` run (a slice of a corpus)")
    return {key: value for key, value in options.items() if key not in PER_RUN}
