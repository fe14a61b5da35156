"""`linctl download` against a local HTTP server: resume, restart, checksum refusal, offline errors."""

import hashlib
import http.server
import io
import re
import shutil
import socket
import tarfile
import threading
import zipfile

import pytest

from linctl.data.datasets import DATASETS, Dataset, Member, Remote, acquire, data_root, wikipedia_dump
from linctl.errors import DownloadError

CONNECT = socket.socket.connect  # taken before conftest's fixture refuses every connection
PAYLOAD = bytes(range(256)) * 1000  # 256,000 bytes


class Server(http.server.ThreadingHTTPServer):
    """Serves ``files`` by path; honours ``Range: bytes=N-`` unless ``ranges`` is False; the next ``cuts``
    answers stop after that many bytes of body, the connection closed."""

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), Handler)
        self.files: dict[str, bytes] = {}
        self.ranges = True
        self.cuts: list[int] = []
        self.requests: list[tuple[str, str | None]] = []  # (path, Range header)

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}{path}"


class Handler(http.server.BaseHTTPRequestHandler):
    server: Server

    def do_GET(self) -> None:
        asked = self.headers.get("Range")
        self.server.requests.append((self.path, asked))
        body = self.server.files.get(self.path)
        if body is None:
            self.send_error(404)
            return
        start = int(asked.removeprefix("bytes=").rstrip("-")) if asked and self.server.ranges else 0
        self.send_response(206 if start else 200)
        if start:
            self.send_header("Content-Range", f"bytes {start}-{len(body) - 1}/{len(body)}")
        self.send_header("Content-Length", str(len(body) - start))
        self.end_headers()
        cut = self.server.cuts.pop(0) if self.server.cuts else None
        self.wfile.write(body[start:] if cut is None else body[start : start + cut])
        self.wfile.flush()
        if cut is not None:
            self.connection.shutdown(socket.SHUT_RDWR)

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def server(monkeypatch):
    def loopback_only(sock: socket.socket, address: object) -> None:
        if not (isinstance(address, tuple) and address[0] == "127.0.0.1"):
            raise OSError("tests must not use the network")
        CONNECT(sock, address)

    monkeypatch.setattr(socket.socket, "connect", loopback_only)
    for proxy in ("http_proxy", "HTTP_PROXY", "https_proxy", "HTTPS_PROXY"):
        monkeypatch.delenv(proxy, raising=False)
    srv = Server()
    thread = threading.Thread(target=srv.serve_forever, daemon=True)
    thread.start()
    yield srv
    srv.shutdown()
    srv.server_close()


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def kept_file(server: Server, data: bytes = PAYLOAD, digest: str | None = None) -> Dataset:
    """A dataset of one file, kept as it is: ``words/list.bin``."""
    server.files["/list.bin"] = data
    url = server.url("/list.bin")
    remote = Remote(url, "sha256", digest or sha256(data), len(data), keep="words/list.bin")
    return Dataset("words", (remote,), ("words/list.bin",), "test")


def test_download_is_checked_and_renamed_into_place(server, tmp_path):
    assert acquire(kept_file(server), tmp_path)
    assert (tmp_path / "words" / "list.bin").read_bytes() == PAYLOAD
    assert sorted(p.name for p in (tmp_path / "words").iterdir()) == ["list.bin"]  # no .part left
    assert server.requests == [("/list.bin", None)]


def test_cut_connection_resumes_with_a_range_request(server, tmp_path):
    dataset = kept_file(server)
    server.cuts = [100_000]
    with pytest.raises(DownloadError, match=r"cut after 100,000 of 256,000 bytes.*run the same command"):
        acquire(dataset, tmp_path)
    assert (tmp_path / "words" / "list.bin.part").stat().st_size == 100_000
    assert not (tmp_path / "words" / "list.bin").exists()
    assert acquire(dataset, tmp_path)
    assert server.requests[-1] == ("/list.bin", "bytes=100000-")
    assert (tmp_path / "words" / "list.bin").read_bytes() == PAYLOAD
    assert not (tmp_path / "words" / "list.bin.part").exists()


def test_server_that_ignores_range_restarts_cleanly(server, tmp_path):
    dataset = kept_file(server)
    server.cuts, server.ranges = [70_000], False
    with pytest.raises(DownloadError, match="cut after"):
        acquire(dataset, tmp_path)
    assert acquire(dataset, tmp_path)
    assert server.requests[-1] == ("/list.bin", "bytes=70000-")  # asked, answered with the whole file (200)
    assert (tmp_path / "words" / "list.bin").read_bytes() == PAYLOAD


def test_checksum_mismatch_is_refused_and_leaves_no_file(server, tmp_path):
    wrong = sha256(b"another file")
    dataset = kept_file(server, digest=wrong)
    with pytest.raises(DownloadError) as caught:
        acquire(dataset, tmp_path)
    message = str(caught.value)
    assert "\n" not in message
    assert server.url("/list.bin") in message and wrong in message and sha256(PAYLOAD) in message
    assert list((tmp_path / "words").iterdir()) == []


def test_archive_members_unpack_into_the_prepare_layout(server, tmp_path):
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as zf:
        for split in ("train", "valid", "test"):
            zf.writestr(f"wikitext-2/wiki.{split}.tokens", f" = {split} = \n")
    server.files["/wikitext-2-v1.zip"] = data = buffer.getvalue()
    real = DATASETS["wikitext-2"]
    remote = Remote(server.url("/wikitext-2-v1.zip"), "sha256", sha256(data), len(data), unpack_into="")
    dataset = Dataset(real.name, (remote,), real.expects, real.licence, real.local_copy)
    assert acquire(dataset, tmp_path)
    assert (tmp_path / "wikitext-2" / "wiki.valid.tokens").read_text() == " = valid = \n"
    assert not (tmp_path / "wikitext-2-v1.zip").exists()
    assert not acquire(dataset, tmp_path)  # a rerun does nothing
    assert len(server.requests) == 1


def test_wikipedia_dump_is_checked_by_its_published_sha1(server, tmp_path):
    name = "simplewiki-20240601-pages-articles-multistream.xml.bz2"
    server.files[f"/simplewiki/20240601/{name}"] = PAYLOAD
    sums = f"{hashlib.sha1(b'x').hexdigest()}  simplewiki-20240601-abstract.xml.gz\n"
    sums += f"{hashlib.sha1(PAYLOAD).hexdigest()}  {name}\n"
    server.files["/simplewiki/20240601/simplewiki-20240601-sha1sums.txt"] = sums.encode()
    dump = wikipedia_dump("simplewiki", "20240601", mirror=server.url(""))
    assert acquire(dump, tmp_path)
    assert (tmp_path / "wikipedia" / name).read_bytes() == PAYLOAD


def test_unreachable_url_names_what_to_put_where(cli, tmp_path):
    result = cli("download", "bert-base-cased-vocab", "--output-dir", tmp_path, ok=False)
    assert result.exit_code == 2
    url = "https://huggingface.co/bert-base-cased/resolve/main/vocab.txt"
    # The reason is the resolver's (no DNS) or conftest's refusal (no connection), whichever comes first.
    assert re.fullmatch(
        re.escape(f"error: cannot download bert-base-cased-vocab from {url} (")
        + r"[^()]+"
        + re.escape(
            f"); put bert-vocab/bert-base-cased-vocab.txt under {tmp_path}, or set LINCTL_DATA to a folder "
            "that holds them\n"
        ),
        result.stderr,
    )
    assert list(tmp_path.iterdir()) == []


def test_dataset_under_linctl_data_is_not_downloaded(cli, data_dir, monkeypatch):
    monkeypatch.setenv("LINCTL_DATA", str(data_dir))
    assert data_root() == data_dir
    names = ["wikitext-2", "glue-sst2", "glue-rte", "wmt14-en-de", "bert-base-uncased-vocab"]
    result = cli("download", *names)  # the network is refused (conftest): nothing was fetched
    assert result.stdout.splitlines() == [f"{name}: already present in {data_dir}" for name in names]


def test_present_file_is_not_fetched_again(server, tmp_path):
    dataset = kept_file(server)
    (tmp_path / "words").mkdir()
    (tmp_path / "words" / "list.bin").write_bytes(b"a local copy")
    assert not acquire(dataset, tmp_path)
    assert server.requests == []


def test_unknown_name_is_refused_with_the_allowed_names(cli):
    result = cli("download", "wikitext-3", ok=False)
    assert result.exit_code == 2
    assert result.stderr.startswith("error: no dataset 'wikitext-3'; datasets: wikitext-2, wikitext-103,")
    assert "wikipedia" in result.stderr and len(result.stderr.splitlines()) == 1


def test_list_shows_every_dataset(cli):
    out = cli("download", "--list").stdout
    for name in [*DATASETS, "wikipedia"]:
        assert name in out


def test_sgm_members_become_one_segment_per_line(server, tmp_path):
    sgm = "\n".join(
        [
            '<srcset setid="newstest2014" srclang="any">',
            '<doc sysid="ref" docid="1" genre="news" origlang="de">',
            "<p>",
            '<seg id="1">Gutach:  Increased safety for pedestrians </seg>',
            '<seg id="2">They are not even 100 metres apart</seg>',
            "</p>",
            "</doc>",
            "</srcset>\n",
        ]
    )
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as tf:
        info = tarfile.TarInfo("test-full/newstest2014-deen-src.en.sgm")
        info.size = len(sgm.encode())
        tf.addfile(info, io.BytesIO(sgm.encode()))
    server.files["/test-full.tgz"] = data = buffer.getvalue()
    member = Member("test-full/newstest2014-deen-src.en.sgm", "wmt/newstest2014.en", sgm=True)
    remote = Remote(
        server.url("/test-full.tgz"), "md5", hashlib.md5(data).hexdigest(), None, members=(member,)
    )
    assert acquire(Dataset("wmt", (remote,), ("wmt/newstest2014.en",), "test"), tmp_path)
    assert (tmp_path / "wmt" / "newstest2014.en").read_text() == (
        "Gutach: Increased safety for pedestrians\nThey are not even 100 metres apart\n"
    )


@pytest.mark.full_data("glue/MRPC")  # not in tests/data: its licence restricts redistribution
def test_mrpc_splits_are_glues(data_dir, tmp_path):
    """GLUE's train/dev/test.tsv are made from Microsoft's files and GLUE's dev ids, byte for byte."""
    mrpc = tmp_path / "glue" / "MRPC"
    mrpc.mkdir(parents=True)
    for name in ("dev_ids.tsv", "msr_paraphrase_train.txt", "msr_paraphrase_test.txt"):
        shutil.copy(data_dir / "glue" / "MRPC" / name, mrpc / name)
    assert acquire(DATASETS["glue-mrpc"], tmp_path)  # the three files are there: nothing is fetched
    for split in ("train", "dev", "test"):
        assert (mrpc / f"{split}.tsv").read_bytes() == (
            data_dir / "glue" / "MRPC" / f"{split}.tsv"
        ).read_bytes()
