"""Is this output up to date? One answer for every stage and sub-stage.

A step that produced an output writes a *stamp* beside it: a small JSON file with the step's options and a
digest of each input. On the next run the step is skipped only when the stamp exists and every option and
input digest is unchanged; otherwise it is rebuilt and the log says why (which option changed from what to
what, which input changed). Steps chain through files: a rebuilt step rewrites its outputs, which changes
the digests the next step recorded, so everything downstream rebuilds too.

    step = Step(exp / "tri" / ".stamp.json", "tree", config={"num_leaves": 800, ...},
                inputs={"mono_ali": mono_dir / "ali/train/tid.npy", "lang": lang_dir})
    if not step.up_to_date(force=cfg.force):
        ...build...
        step.done(num_pdfs=812)        # written last, atomically: a crash leaves the step not done

Digests: a file up to 64 MiB is hashed (sha256 of its content); a larger file (feature stores, audio
archives) and a directory listing use names, sizes and modification times, so a check never reads
gigabytes. Directories are hashed recursively over their files, stamps excluded.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import os
from pathlib import Path
from typing import Any, Mapping

from asr_base.io import read_json, write_json

log = logging.getLogger(__name__)

STAMP_NAME = ".stamp.json"
_HASH_LIMIT = 64 << 20


def path_digest(path: str | os.PathLike) -> str:
    """Digest of a file or directory (see the module docstring); ``"absent"`` for a missing path."""
    p = Path(path)
    if p.is_file():
        st = p.stat()
        if st.st_size <= _HASH_LIMIT:
            h = hashlib.sha256()
            with open(p, "rb") as f:
                for chunk in iter(lambda: f.read(1 << 20), b""):
                    h.update(chunk)
            return "sha256:" + h.hexdigest()
        return f"stat:{st.st_size}:{st.st_mtime_ns}"
    if p.is_dir():
        h = hashlib.sha256()
        for root, dirs, files in os.walk(p):
            dirs.sort()
            for name in sorted(files):
                if name.endswith(STAMP_NAME) or name.startswith(".") and name.endswith(".tmp"):
                    continue
                fp = Path(root, name)
                st = fp.stat()
                h.update(f"{fp.relative_to(p)}\0{st.st_size}\0{st.st_mtime_ns}\n".encode())
        return "dir:" + h.hexdigest()
    return "absent"


def _plain(value: Any) -> Any:
    """JSON-comparable form of an option value (dataclasses, tuples, paths)."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return _plain(dataclasses.asdict(value))
    if isinstance(value, Mapping):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, os.PathLike):
        return os.fspath(value)
    return value


class Step:
    """One resumable step: its stamp file, its options and its inputs."""

    def __init__(self, stamp: str | os.PathLike, name: str, config: Any = None,
                 inputs: Mapping[str, str | os.PathLike | None] | None = None):
        self.stamp = Path(stamp)
        self.name = name
        self.config = _plain(config) if config is not None else {}
        self.inputs = {k: os.fspath(v) for k, v in (inputs or {}).items() if v is not None}
        self._digests: dict[str, str] | None = None

    def digests(self) -> dict[str, str]:
        if self._digests is None:
            self._digests = {k: path_digest(v) for k, v in sorted(self.inputs.items())}
        return self._digests

    def why_stale(self) -> str | None:
        """None when up to date, else the reason it must be (re)built."""
        if not self.stamp.is_file():
            return "not built yet"
        try:
            old = read_json(self.stamp)
        except (OSError, json.JSONDecodeError) as e:
            return f"unreadable stamp ({e})"
        old_cfg, new_cfg = old.get("config", {}), self.config
        if isinstance(old_cfg, dict) and isinstance(new_cfg, dict):
            changed = [f"{k} {old_cfg.get(k)!r} -> {new_cfg.get(k)!r}" for k in sorted(set(old_cfg) | set(new_cfg))
                       if old_cfg.get(k) != new_cfg.get(k)]
            if changed:
                return "option changed: " + ", ".join(changed)
        elif old_cfg != new_cfg:
            return "options changed"
        old_in, new_in = old.get("inputs", {}), self.digests()
        changed = [k for k in sorted(set(old_in) | set(new_in)) if old_in.get(k) != new_in.get(k)]
        if changed:
            return "input changed: " + ", ".join(f"{k} ({self.inputs.get(k, 'removed')})" for k in changed)
        return None

    def up_to_date(self, force: bool = False) -> bool:
        """True (and logs it) when the step can be skipped; else logs why it is (re)built."""
        if force:
            log.info("%s: rebuilding (--force)", self.name)
            return False
        why = self.why_stale()
        if why is None:
            log.info("%s: up to date (%s); skipping", self.name, self.stamp)
            return True
        if why != "not built yet":
            log.info("%s: rebuilding, %s", self.name, why)
        return False

    def info(self) -> dict:
        """What :meth:`done` recorded besides options and inputs."""
        return read_json(self.stamp).get("info", {})

    def done(self, **info: Any) -> None:
        """Record the step as built; call after its outputs are written."""
        write_json(self.stamp, {"step": self.name, "config": self.config, "inputs": self.digests(),
                                "info": _plain(info)})

    def invalidate(self) -> None:
        self.stamp.unlink(missing_ok=True)
