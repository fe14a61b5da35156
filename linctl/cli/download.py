"""`linctl download`: public datasets into the data folder, checked against their published checksums."""

from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.table import Table

from linctl.cli.errors import refuse
from linctl.cli.options import stdout

if TYPE_CHECKING:
    from linctl.data.datasets import Dataset


def download(
    names: Annotated[
        list[str] | None,
        typer.Argument(metavar="NAME…", help="Datasets to fetch; --list shows them.", show_default=False),
    ] = None,
    list_: Annotated[
        bool, typer.Option("--list", help="Print the datasets, their files, sizes and licences.")
    ] = False,
    output_dir: Annotated[
        Path | None,
        typer.Option(help="The data folder to fill [default: $LINCTL_DATA, else ../shared/data]."),
    ] = None,
    wiki_date: Annotated[
        str | None,
        typer.Option(
            help="wikipedia: the dump's date, YYYYMMDD, as listed at dumps.wikimedia.org/WIKI/ "
            "[default: none; wikipedia needs one]."
        ),
    ] = None,
    wiki: Annotated[str, typer.Option(help="wikipedia: which wiki's dump, e.g. enwiki, dewiki.")] = "enwiki",
) -> None:
    """Download datasets (checksums checked, resumable) unless the data folder already holds them."""
    from linctl.atomic import check_writable_folder
    from linctl.data.datasets import DATASETS, WIKIPEDIA, acquire, data_root, dataset_named

    if list_:
        _print_list(DATASETS.values())
        return
    if not names:
        refuse(f"download: name a dataset; datasets: {', '.join([*DATASETS, WIKIPEDIA])} (--list shows them)")
    datasets = [dataset_named(name, wiki, wiki_date) for name in names]  # every name checked before any work
    root = output_dir if output_dir is not None else data_root()
    for dataset in datasets:
        if dataset.present(root):
            stdout.print(f"{dataset.name}: already present in {root}", highlight=False)
            continue
        check_writable_folder(root, "--output-dir")
        acquire(dataset, root)
        stdout.print(f"{dataset.name}: downloaded into {root}", highlight=False)


def _print_list(datasets: Iterable["Dataset"]) -> None:
    from linctl.data.datasets import WIKIPEDIA, WIKIPEDIA_LICENCE

    table = Table(title="linctl download", title_justify="left")
    table.add_column("dataset", no_wrap=True)
    table.add_column("files", overflow="fold")
    table.add_column("download", justify="right", no_wrap=True)
    table.add_column("licence")
    for dataset in datasets:
        size = f"{dataset.size / 1e6:,.1f} MB" if dataset.size is not None else "?"
        table.add_row(dataset.name, "\n".join(dataset.expects), size, dataset.licence)
    dump = "wikipedia/WIKI-DATE-pages-articles-multistream.xml.bz2 (--wiki, --wiki-date)"
    table.add_row(WIKIPEDIA, dump, "?", WIKIPEDIA_LICENCE)
    stdout.print(table)
