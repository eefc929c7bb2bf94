"""``data-prep download``: fetch LibriSpeech parts, the lexicon and the LM files from a public mirror.

- Resumable: a partial ``<name>.part`` is continued with an HTTP Range request.
- Verified: archives are checked against the mirror's own ``md5sum.txt`` (OpenSLR publishes one per
  resource); a mismatch deletes the download and fails loudly.
- Idempotent: an extracted part leaves ``<out>/.done/<part>`` and is skipped on a rerun.

Users who already have a copy point the recipes at it with ``--corpus-dir`` and never call this.
The mirror may be any URL prefix, including ``file://`` (used by the tests).
"""

from __future__ import annotations

import argparse
import hashlib
import logging
import os
import shutil
import tarfile
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from tqdm import tqdm

from asr_base.config import add_options, from_args, option

log = logging.getLogger(__name__)

LIBRISPEECH_MIRROR = "https://www.openslr.org/resources/12"
LM_MIRROR = "https://www.openslr.org/resources/11"
LIBRISPEECH_PARTS = ["dev-clean", "dev-other", "test-clean", "test-other",
                     "train-clean-100", "train-clean-360", "train-other-500"]
LM_FILES = ["librispeech-lexicon.txt", "3-gram.pruned.1e-7.arpa.gz", "3-gram.arpa.gz", "librispeech-vocab.txt"]
CHUNK = 1 << 20


def fetch_md5sums(mirror: str) -> dict[str, str]:
    """{file name: md5} from ``<mirror>/md5sum.txt``; empty if the mirror has none."""
    try:
        with urllib.request.urlopen(f"{mirror}/md5sum.txt", timeout=60) as r:
            text = r.read().decode("utf-8", "replace")
    except (urllib.error.URLError, OSError) as e:
        log.warning("no md5sum.txt at %s (%s): downloads will not be verified", mirror, e)
        return {}
    sums = {}
    for line in text.splitlines():
        parts = line.split()
        if len(parts) == 2:
            sums[parts[1].lstrip("*")] = parts[0]
    return sums


def md5_of(path: Path) -> str:
    h = hashlib.md5()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(CHUNK), b""):
            h.update(block)
    return h.hexdigest()


def download(url: str, dest: Path, md5: str | None = None) -> Path:
    """Download ``url`` to ``dest`` (resuming ``dest.part``), verify ``md5``, rename atomically."""
    if dest.is_file() and (md5 is None or md5_of(dest) == md5):
        log.info("%s already downloaded", dest)
        return dest
    dest.parent.mkdir(parents=True, exist_ok=True)
    part = dest.with_name(dest.name + ".part")
    have = part.stat().st_size if part.is_file() else 0
    req = urllib.request.Request(url)
    if have and url.startswith(("http://", "https://")):
        req.add_header("Range", f"bytes={have}-")
    with urllib.request.urlopen(req, timeout=60) as r:
        resumed = getattr(r, "status", 200) == 206
        if not resumed:
            have = 0
        total = r.headers.get("Content-Length")
        total = int(total) + have if total is not None else None
        with open(part, "ab" if resumed else "wb") as f, tqdm(
            total=total, initial=have, unit="B", unit_scale=True, desc=dest.name
        ) as bar:
            for block in iter(lambda: r.read(CHUNK), b""):
                f.write(block)
                bar.update(len(block))
    if md5 is not None:
        got = md5_of(part)
        if got != md5:
            part.unlink()
            raise RuntimeError(f"checksum mismatch for {url}: md5 {got}, expected {md5}; the download was deleted")
    os.replace(part, dest)
    return dest


def extract(archive: Path, out_dir: Path) -> None:
    log.info("extracting %s into %s", archive, out_dir)
    with tarfile.open(archive) as tar:
        tar.extractall(out_dir, filter="data")


def download_librispeech(out_dir: Path, parts: list[str], mirror: str = LIBRISPEECH_MIRROR,
                         keep_archives: bool = False) -> None:
    """Download + verify + extract parts into ``out_dir/LibriSpeech/<part>``."""
    sums = fetch_md5sums(mirror)
    done = out_dir / ".done"
    for p in parts:
        if (done / p).is_file() and (out_dir / "LibriSpeech" / p).is_dir():
            log.info("%s already extracted, skipping", p)
            continue
        name = f"{p}.tar.gz"
        archive = download(f"{mirror}/{name}", out_dir / name, sums.get(name))
        extract(archive, out_dir)
        if not (out_dir / "LibriSpeech" / p).is_dir():
            raise RuntimeError(f"{archive} did not contain LibriSpeech/{p}")
        done.mkdir(parents=True, exist_ok=True)
        (done / p).write_text("ok\n")
        if not keep_archives:
            archive.unlink()


def download_lm(out_dir: Path, files: list[str], mirror: str = LM_MIRROR) -> None:
    sums = fetch_md5sums(mirror)
    for name in files:
        download(f"{mirror}/{name}", out_dir / name, sums.get(name))


@dataclass
class DownloadConfig:
    out_dir: str = option(help="corpus root; parts land in OUT/LibriSpeech/<part>")
    parts: list[str] = option(["dev-clean", "test-clean", "train-clean-100"],
                              help=f"LibriSpeech parts to fetch (of {' '.join(LIBRISPEECH_PARTS)})")
    mirror: str = option(LIBRISPEECH_MIRROR, help="URL prefix of the LibriSpeech resource")
    lm_dir: str | None = option(None, help="also fetch the lexicon and ARPA LMs into this dir")
    lm_files: list[str] = option(LM_FILES[:2], help="LM resource files to fetch")
    lm_mirror: str = option(LM_MIRROR, help="URL prefix of the LM resource")
    keep_archives: bool = option(False, help="keep the .tar.gz files after extraction")


def run_download(cfg: DownloadConfig) -> None:
    unknown = [p for p in cfg.parts if p not in LIBRISPEECH_PARTS]
    if unknown:
        raise ValueError(f"unknown LibriSpeech part(s) {' '.join(unknown)}; choose from {' '.join(LIBRISPEECH_PARTS)}")
    out_dir = Path(cfg.out_dir)
    download_librispeech(out_dir, cfg.parts, cfg.mirror, cfg.keep_archives)
    if cfg.lm_dir is not None:
        download_lm(Path(cfg.lm_dir), cfg.lm_files, cfg.lm_mirror)
    if shutil.disk_usage(out_dir).free < (10 << 30):
        log.warning("less than 10 GB free under %s", out_dir)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_options(parser, DownloadConfig)


def main(args: argparse.Namespace) -> int:
    try:
        run_download(from_args(DownloadConfig, args))
    except (ValueError, RuntimeError, OSError) as e:
        log.error("%s", e)
        return 1
    return 0
