"""download: checksum verification, extraction, skip-if-done and HTTP resume, against local mirrors."""

import hashlib
import http.server
import io
import tarfile
import threading
from pathlib import Path

import pytest

from data_prep.corpus import download as dl


def _make_part_archive(mirror: Path, part: str) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tar:
        for name, data in [(f"LibriSpeech/{part}/1/2/1-2.trans.txt", b"1-2-0000 HELLO\n"),
                           (f"LibriSpeech/{part}/1/2/1-2-0000.flac", b"not really flac")]:
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    blob = buf.getvalue()
    (mirror / f"{part}.tar.gz").write_bytes(blob)
    return blob


def test_download_verify_extract_and_skip(tmp_path):
    mirror = tmp_path / "mirror"
    mirror.mkdir()
    blob = _make_part_archive(mirror, "dev-clean")
    (mirror / "md5sum.txt").write_text(f"{hashlib.md5(blob).hexdigest()} dev-clean.tar.gz\n")
    out = tmp_path / "corpus"
    dl.download_librispeech(out, ["dev-clean"], mirror=mirror.as_uri())
    assert (out / "LibriSpeech/dev-clean/1/2/1-2.trans.txt").read_text() == "1-2-0000 HELLO\n"
    assert not (out / "dev-clean.tar.gz").exists()  # archive removed after extraction
    # a rerun is a no-op even if the mirror disappears
    (mirror / "dev-clean.tar.gz").unlink()
    dl.download_librispeech(out, ["dev-clean"], mirror=mirror.as_uri())


def test_checksum_mismatch_deletes_and_fails(tmp_path):
    mirror = tmp_path / "mirror"
    mirror.mkdir()
    _make_part_archive(mirror, "test-clean")
    (mirror / "md5sum.txt").write_text("0" * 32 + " test-clean.tar.gz\n")
    with pytest.raises(RuntimeError, match="checksum mismatch"):
        dl.download_librispeech(tmp_path / "c", ["test-clean"], mirror=mirror.as_uri())
    assert not list((tmp_path / "c").glob("*.tar.gz*"))


class _RangeHandler(http.server.SimpleHTTPRequestHandler):
    """Serves one payload with HTTP Range support (what real mirrors do)."""

    payload = b""
    ranges_seen: list[str] = []

    def do_GET(self):  # noqa: N802
        rng = self.headers.get("Range")
        data, status = self.payload, 200
        if rng:
            self.ranges_seen.append(rng)
            start = int(rng.split("=")[1].split("-")[0])
            data, status = self.payload[start:], 206
        self.send_response(status)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *args):
        pass


def test_resume_from_partial_download(tmp_path):
    payload = bytes(range(256)) * 4096
    _RangeHandler.payload = payload
    _RangeHandler.ranges_seen = []
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _RangeHandler)
    t = threading.Thread(target=server.serve_forever, daemon=True)
    t.start()
    try:
        dest = tmp_path / "big.bin"
        (tmp_path / "big.bin.part").write_bytes(payload[:100_000])
        url = f"http://127.0.0.1:{server.server_address[1]}/big.bin"
        dl.download(url, dest, md5=hashlib.md5(payload).hexdigest())
        assert dest.read_bytes() == payload
        assert _RangeHandler.ranges_seen == ["bytes=100000-"]
    finally:
        server.shutdown()
        server.server_close()


def test_cli_download_and_unknown_part(tmp_path):
    from data_prep import cli

    mirror = tmp_path / "mirror"
    mirror.mkdir()
    _make_part_archive(mirror, "dev-clean")
    out = tmp_path / "corpus"
    assert cli.main(["download", "--out-dir", str(out), "--parts", "dev-clean", "--mirror", mirror.as_uri()]) == 0
    assert (out / "LibriSpeech/dev-clean/1/2/1-2.trans.txt").is_file()
    assert cli.main(["download", "--out-dir", str(out), "--parts", "dev-nope", "--mirror", mirror.as_uri()]) == 1
