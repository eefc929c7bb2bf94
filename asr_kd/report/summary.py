"""What ``asr-kd report`` shows about a run: its options (:class:`ReportConfig`) and the collected run
(:class:`RunSummary`: models, frame accuracies, WERs, alignment, corpus, stage times) with the lookups the
Table-1 layout needs. Filled by :func:`asr_kd.report.collect.collect`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from asr_base.config import option
from asr_kd.training.evaluate import gain_recovered

SPLIT_ORDER = ("train", "dev", "test")
_LOCATIONS = "locations inside --exp"


@dataclass
class ReportConfig:
    exp: str = option("exp", help="experiment directory of the run")
    data: str = option("data", help="data directory (feature stores in DATA/fbank/<split>)")
    out: str | None = option(None, help="report file; unset: EXP/report.md")
    plots_dir: str | None = option(None, help="PNG directory; unset: <out dir>/report_plots")
    results: list[str] | None = option(None, help="frame-accuracy JSONs of asr-kd evaluate; "
                                                   "unset: EXP/results/*.json")
    splits: list[str] = option([], help="evaluation splits (table columns); unset: every split evaluated or "
                                        "decoded (dev* before test*)")
    # sub-directories of --exp (absolute paths are used as they are)
    baseline: str = option("baseline", flag="--baseline-dir", group=_LOCATIONS, help="baseline (relative to --exp)")
    teachers: str = option("teachers", flag="--teachers-dir", group=_LOCATIONS, help="teachers (relative to --exp)")
    students: str = option("students", flag="--students-dir", group=_LOCATIONS, help="students (relative to --exp)")
    regularizer: str = option("regularizer", flag="--regularizer-dir", group=_LOCATIONS,
                              help="regularizer (relative to --exp)")
    alignment: str = option("tri", flag="--alignment-dir", group=_LOCATIONS, help="alignment (relative to --exp)")
    decode: str = option("decode", flag="--decode-dir", group=_LOCATIONS, help="decode (relative to --exp)")
    done: str = option("done", flag="--done-dir", group=_LOCATIONS, help="done (relative to --exp)")
    quiet: bool = option(False, help="do not print the Table-1 block to stdout")

    def path(self, sub: str) -> Path:
        return Path(self.exp) / sub

    @property
    def out_path(self) -> Path:
        return Path(self.out) if self.out else Path(self.exp) / "report.md"

    @property
    def plots_path(self) -> Path:
        return Path(self.plots_dir) if self.plots_dir else self.out_path.parent / "report_plots"


def split_sort_key(name: str) -> tuple:
    """train*, dev*, test*, then the rest (dev-clean before dev-other, as LibriSpeech lists them)."""
    rank = next((i for i, p in enumerate(SPLIT_ORDER) if name.startswith(p)), len(SPLIT_ORDER))
    return rank, name


@dataclass
class ModelInfo:
    """One trained model directory (baseline, a teacher member or a student)."""

    name: str  # display name (baseline, member_00, T2)
    dir: Path
    key: str  # its system name in asr-kd evaluate's output (baseline, teachers/member_00, students/T2)
    decode_name: str | None  # its directory under exp/decode
    config: dict = field(default_factory=dict)
    eval: dict = field(default_factory=dict)  # eval.json
    history: list[dict] = field(default_factory=list)  # train_log.jsonl (member history: scalar values)
    temperature: float | None = None

    @property
    def num_parameters(self) -> int | None:
        return self.config.get("num_parameters")


def stop_reason(m: ModelInfo) -> str | None:
    """Why a model's training stopped: ``"newbob"`` (converged: the schedule's stop threshold) or ``"epoch cap"``
    (``--epochs`` reached first), from its last epoch record's ``stop``; a log from before that field is judged
    by its epoch count against the configured cap. None without an epoch record."""
    epochs = [h for h in m.history if h.get("type") == "epoch"]
    if not epochs or not epochs[-1].get("done", True):  # no epoch yet, or still training
        return None
    if "stop" in epochs[-1]:
        return {"newbob": "newbob", "epochs": "epoch cap"}.get(epochs[-1]["stop"])
    stopped = next((h for h in epochs if h.get("done")), epochs[-1])  # a stack's member may stop before the rest
    cap = (m.config.get("train") or {}).get("epochs")
    return "epoch cap" if cap is not None and stopped["epoch"] + 1 >= cap else "newbob"


@dataclass
class RunSummary:
    cfg: ReportConfig
    splits: list[str]
    frame_acc: dict[str, dict[str, float]]  # split -> evaluate system name -> %
    acc_sources: set[str]
    wer: dict[str, dict[str, dict]]  # decode name -> split -> wer.json
    baseline: ModelInfo | None
    members: list[ModelInfo]
    ensemble: dict  # ensemble.json (may be empty)
    ensemble_dir: Path
    students: list[ModelInfo]
    best_student: str | None
    best_json: dict
    regularizer: dict | None
    alignment: dict | None
    num_tied_states: int | None
    corpus: dict[str, dict]  # split -> meta.json
    stage_times: list[tuple[str, int | None, str]]  # (step, seconds or None, raw text)
    sources: list[str]
    graph: dict | None = None  # exp/graph/manifest.json (asr-kd make-graph): the decoding vocabulary's lang dir
    graph_words: int | None = None  # words in exp/graph/words.txt (without <eps>, #0, <s>, </s>)
    decode_speed: list[dict] = field(default_factory=list)  # exp/results/decode_speed_*.json (asr-kd decode-speed)

    # ---- lookups
    def acc(self, split: str, key: str) -> float | None:
        return self.frame_acc.get(split, {}).get(key)

    def ensemble_key(self, mean: str = "arithmetic") -> str:
        return f"{self.ensemble_dir.name}/ensemble_{mean}"

    def student(self, name: str | None) -> ModelInfo | None:
        return next((s for s in self.students if s.name == name), None)

    def wer_of(self, decode_name: str | None, split: str) -> float | None:
        w = self.wer.get(decode_name or "", {}).get(split)
        return None if w is None or w.get("wer") is None else float(w["wer"])

    @property
    def selection_splits(self) -> list[str]:
        """The held-out splits that selected something: the trainers' ``--dev-feats`` (early stopping, T) and
        every split decoded with ``--select-best`` (its own LM weight / penalty)."""
        out = []
        for m in [self.baseline, *self.members, *self.students]:
            dev = (m.config.get("data") or {}).get("dev_feats") if m is not None else None
            if dev:
                out.append(Path(dev).name)
                break
        out += [s for d in self.wer.values() for s, w in d.items() if (w.get("config") or {}).get("select_best")]
        return sorted(set(out), key=split_sort_key)

    @property
    def report_splits(self) -> list[str]:
        """The splits whose numbers are results: every evaluated split that selected nothing."""
        return [s for s in self.splits if s not in self.selection_splits]

    @property
    def num_members(self) -> int:
        return int(self.ensemble.get("num_members") or len(self.members))

    def table1_rows(self) -> list[dict]:
        """Rows of the Table-1 layout: ``{label, system, frame_acc: {split: %}, wer: {split: %}}``."""
        rows = []
        if self.baseline is not None or any(self.baseline_key in a for a in self.frame_acc.values()):
            rows.append(self._row("Baseline (single model, hard labels)", self.baseline_key, "baseline"))
        n = self.num_members
        for mean, dec in (("arithmetic", "ensemble"), ("geometric", "ensemble_geometric")):
            key = self.ensemble_key(mean)
            if any(key in a for a in self.frame_acc.values()) or (mean == "arithmetic" and dec in self.wer):
                rows.append(self._row(f"{f'{n}× e' if n else 'E'}nsemble ({mean} mean)", key, dec))
        best = self.student(self.best_student)
        if best is not None:
            rows.append(self._row(f"Distilled single model ({best.name}, best on dev)", best.key, best.decode_name))
        return rows

    @property
    def baseline_key(self) -> str:
        return self.baseline.key if self.baseline else Path(self.cfg.baseline).name

    def _row(self, label: str, key: str, decode_name: str | None) -> dict:
        return {"label": label, "system": key, "decode": decode_name,
                "frame_acc": {s: self.acc(s, key) for s in self.splits},
                "wer": {s: self.wer_of(decode_name, s) for s in self.splits}}

    def gain(self, split: str, metric: str = "frame_acc") -> dict | None:
        """Share of the (arithmetic) ensemble's gain over the baseline reached by the best student."""
        best = self.student(self.best_student)
        if best is None:
            return None
        if metric == "frame_acc":
            b, e, s = (self.acc(split, k) for k in (self.baseline_key, self.ensemble_key(), best.key))
        else:  # WER: lower is better, the same formula on the error rates
            b, e, s = (self.wer_of(d, split) for d in ("baseline", "ensemble", best.decode_name))
        if b is None or e is None or s is None:
            return None
        better = e < b if metric == "wer" else e > b  # a share of a loss is not meaningful
        return {"baseline": b, "ensemble": e, "student": s, "fraction": gain_recovered(b, e, s),
                "ensemble_better": better}


    def decode_order(self) -> list[str]:
        """Decode dirs in report order: baseline, ensemble(s), the students, then any other."""
        first = ["baseline", "ensemble", "ensemble_geometric"] + [s.decode_name for s in self.students]
        return [n for n in first if n in self.wer] + sorted(n for n in self.wer if n not in first)
