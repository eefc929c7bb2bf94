"""``report.md``: Table 1 (baseline, ensemble, distilled model; frame accuracy, WER, share of the gain
recovered) and the sections on members, the temperature sweep, section 6, corpus, models, alignment,
decoding and stage times, all rendered from a :class:`~asr_kd.report.summary.RunSummary`.
"""

from __future__ import annotations

import datetime
import math
import os
from pathlib import Path
from typing import Any

from asr_kd.report.summary import ModelInfo, RunSummary, split_sort_key, stop_reason

DASH = "—"


def fmt(x: float | None, digits: int = 2, suffix: str = "") -> str:
    if x is None or (isinstance(x, float) and math.isnan(x)):
        return DASH
    return f"{x:.{digits}f}{suffix}"


def fmt_int(x: Any) -> str:
    return DASH if x is None else f"{int(x):,}"


def fmt_seconds(s: float | None) -> str:
    if s is None:
        return DASH
    s = int(round(s))
    return f"{s // 3600}:{s // 60 % 60:02d}:{s % 60:02d}"


def fmt_fraction(g: dict | None, lower_is_better: bool = False) -> str:
    """``86%``; with a note when the ensemble is no better than the baseline (the share is then meaningless)."""
    if g is None:
        return DASH
    if g["fraction"] is None:
        return f"{DASH} (the ensemble is not different from the baseline)"
    text = f"{100 * g['fraction']:.0f}%"
    worse = g["ensemble"] > g["baseline"] if lower_is_better else g["ensemble"] < g["baseline"]
    return text + (" (the ensemble is worse than the baseline: not meaningful)" if worse else "")


def md_table(header: list[str], rows: list[list[str]], align: str | None = None) -> str:
    align = align or "l" + "r" * (len(header) - 1)
    sep = ["---:" if a == "r" else "---" for a in align]
    lines = ["| " + " | ".join(header) + " |", "| " + " | ".join(sep) + " |"]
    lines += ["| " + " | ".join(r) + " |" for r in rows]
    return "\n".join(lines)


def table1_markdown(run: RunSummary) -> str:
    """The Table-1 block: baseline, ensemble(s), best student; frame accuracy and WER; share of the gain."""
    rows = run.table1_rows()
    if not rows:
        return "No trained models found yet (no baseline, ensemble or students under " f"{run.cfg.exp})."
    header = ["System"] + [f"Frame acc. {s} (%)" for s in run.splits] + [f"WER {s} (%)" for s in run.splits]
    body = [[r["label"]] + [fmt(r["frame_acc"][s]) for s in run.splits] + [fmt(r["wer"][s]) for s in run.splits]
            for r in rows]
    lines = [md_table(header, body), ""]
    for split in run.report_splits:  # the headline: on the splits that selected nothing
        g = run.gain(split)
        if g is not None:
            lines.append(f"- **Ensemble frame-accuracy gain over the baseline recovered by the distilled model on "
                         f"{split}: {fmt_fraction(g)}** = ({fmt(g['student'])} − {fmt(g['baseline'])}) / "
                         f"({fmt(g['ensemble'])} − {fmt(g['baseline'])})")
        g = run.gain(split, "wer")
        if g is not None:
            lines.append(f"- Ensemble WER reduction recovered on {split}: {fmt_fraction(g, lower_is_better=True)} = "
                         f"({fmt(g['baseline'])} − {fmt(g['student'])}) / "
                         f"({fmt(g['baseline'])} − {fmt(g['ensemble'])})")
    for sel in (s for s in run.splits if s in run.selection_splits):
        fa, wr = run.gain(sel), run.gain(sel, "wer")
        if fa is not None or wr is not None:
            lines.append(f"- Not a result: {sel} selected (early stopping and T on the trainers' dev split; the LM "
                         f"weight / insertion penalty on each split decoded with --select-best), so its share of "
                         f"the gain is no unbiased estimate (frame accuracy {fmt_fraction(fa)}, WER "
                         f"{fmt_fraction(wr, lower_is_better=True)}).")
    if not any(run.gain(s) for s in run.splits):
        lines.append("- Share of the ensemble's gain recovered: " + DASH +
                     " (needs baseline, ensemble and best-student frame accuracy on the same split)")
    if any(w.get("one_best") for d in run.wer.values() for w in d.values()):
        one_pass = any(w.get("search") == "one-pass" for d in run.wer.values() for w in d.values())
        lines.append("- WER columns: lattice one-best at each model's LM weight / insertion penalty tuned on dev "
                     "(test at dev's point" + ("; a one-pass search at dev's acoustic scale where dev's best penalty "
                                               "is 0" if one_pass else "") +
                     "); the untuned numbers and the points are under *Decoding*.")
    return "\n".join(lines).rstrip() + "\n"


def _members_section(run: RunSummary) -> str:
    if not run.members:
        return "No teacher members found.\n"
    body, accs = [], {s: [] for s in run.splits}
    for m in run.members:
        row = [m.name, str(m.config.get("seed", DASH))]
        for s in run.splits:
            a = run.acc(s, m.key)
            row.append(fmt(a))
            if a is not None:
                accs[s].append(a)
        body.append(row)
    for label, f in (("mean", lambda v: sum(v) / len(v)), ("min", min), ("max", max)):
        body.append([f"*{label}*", ""] + [fmt(f(accs[s])) if accs[s] else DASH for s in run.splits])
    for k in range(2, len(run.members)):  # the gain against ensemble size (asr-kd evaluate)
        key = f"{run.ensemble_dir.name}/ensemble_first_{k}"
        if any(run.acc(s, key) is not None for s in run.splits):
            body.append([f"ensemble of the first {k} (arithmetic)", ""] + [fmt(run.acc(s, key)) for s in run.splits])
    for mean in ("arithmetic", "geometric"):
        body.append([f"**ensemble ({mean})**", ""] + [fmt(run.acc(s, run.ensemble_key(mean))) for s in run.splits])
    return md_table(["Member", "seed"] + [f"Frame acc. {s} (%)" for s in run.splits], body) + "\n"


def _sweep_section(run: RunSummary) -> str:
    if not run.students:
        return "No distilled students found.\n"
    sel = run.best_json.get("selected_on", "dev frame accuracy")
    body = []
    for st in run.students:
        t = fmt(st.temperature, 0 if st.temperature is not None and float(st.temperature).is_integer() else 2) \
            if st.temperature is not None else ("logit matching" if st.name == "logit_matching" else DASH)
        body.append([("**" + st.name + "**") if st.name == run.best_student else st.name, t]
                    + [fmt(run.acc(s, st.key)) for s in run.splits]
                    + [fmt(run.wer_of(st.decode_name, s)) for s in run.splits])
    cfg = run.students[0].config
    header = ["Student", "T"] + [f"Frame acc. {s} (%)" for s in run.splits] + [f"WER {s} (%)" for s in run.splits]
    text = md_table(header, body, "ll" + "r" * (2 * len(run.splits)))
    notes = [f"Best student (bold): **{run.best_student or DASH}**, selected on {sel}."]
    if cfg:
        notes.append(f"Loss `{cfg.get('loss', DASH)}`, hard-label weight {cfg.get('hard_weight', DASH)}, "
                     f"{cfg.get('ensemble_mean', DASH)} mean of {cfg.get('num_teachers', DASH)} teachers; "
                     "students are used at T = 1.")
    return text + "\n\n" + " ".join(notes) + "\n"


def _regularizer_section(run: RunSummary) -> str:
    r = run.regularizer
    if not r:
        return (f"Not run (no `{run.cfg.path(run.cfg.regularizer) / 'report.json'}`; the mini recipe runs it with "
                "`--regularizer true`).\n")
    frac = r.get("fraction")
    pct = f"{100 * frac:g}%" if isinstance(frac, (int, float)) else "a fraction"
    labels = {"baseline_full_data": "Baseline (100% of training set, hard labels)"}
    body = []
    for name, row in r.get("frame_acc", {}).items():
        label = labels.get(name) or (f"Hard labels ({pct} of training set)" if name.startswith("hard_")
                                     else f"Soft targets of the full-data model ({pct} of training set)"
                                     if name.startswith("soft_") else name)
        body.append([label, fmt(row.get("train")), fmt(row.get("test")), fmt_int(row.get("train_frames"))])
    text = md_table(["System & training set", "Train frame acc. (%)", "Test frame acc. (%)", "Train frames"], body)
    note = (f"Soft targets at T = {r.get('temperature', DASH)}, hard-label weight {r.get('hard_weight', DASH)}, "
            f"teacher `{r.get('teacher', DASH)}`. ")
    if r.get("passes_per_epoch"):
        note += (f"{fmt_int(r.get('epochs_run'))} epochs of {r['passes_per_epoch']} passes over the subset each "
                 "(newbob). ")
    rows = r.get("frame_acc", {})
    full = (rows.get("baseline_full_data") or {}).get("test")
    soft = next((v.get("test") for k, v in rows.items() if k.startswith("soft_")), None)
    if full and soft is not None:
        note += (f"The soft-target model reaches {fmt(100 * soft / full, 0)}% of the full-data baseline's test "
                 "frame accuracy (paper: 97%). ")
    if r.get("note"):
        note += r["note"][:1].upper() + r["note"][1:] + "."
    return text + "\n\n" + note.strip() + "\n"


def _corpus_section(run: RunSummary) -> str:
    if not run.corpus:
        return f"No feature stores found (`{Path(run.cfg.data) / 'fbank'}/<split>/meta.json`).\n"
    body = []
    for split, m in run.corpus.items():
        secs = m.get("audio_seconds")
        body.append([split, fmt(secs / 3600 if secs is not None else None, 3), fmt_int(m.get("num_utts")),
                     fmt_int(m.get("num_frames")), fmt_int(m.get("speakers")), fmt_int(m.get("num_skipped"))])
    return md_table(["Split", "Hours", "Utterances", "Frames", "Speakers", "Skipped utts"], body) + "\n"


def _models_section(run: RunSummary) -> str:
    lines = [f"Tied states (DNN outputs): **{fmt_int(run.num_tied_states)}**", ""]
    body = []

    def arch(m: ModelInfo) -> str:
        c = m.config.get("model") or {}
        if not c:
            return DASH
        return (f"{c.get('hidden_layers')} × {c.get('hidden_dim')} ReLU, window {c.get('left_context')}+1+"
                f"{c.get('right_context')} × {c.get('feat_dim')}")

    def epochs(m: ModelInfo) -> str:
        return fmt_int(m.config.get("epochs_trained", sum(1 for h in m.history if h.get("type") == "epoch") or None))

    def stopped_by(models: list[ModelInfo]) -> str:
        reasons = sorted({stop_reason(m) for m in models} - {None})
        return ", ".join(reasons) if reasons else DASH

    if run.baseline:
        body.append(["Baseline", arch(run.baseline), fmt_int(run.baseline.num_parameters), epochs(run.baseline),
                     stopped_by([run.baseline])])
    if run.members:
        params = [m.num_parameters for m in run.members]
        total = sum(params) if all(p is not None for p in params) else None
        body.append([f"Teacher ensemble ({len(run.members)} members)", arch(run.members[0]),
                     f"{fmt_int(params[0])} each, {fmt_int(total)} total",
                     "/".join(epochs(m) for m in run.members), stopped_by(run.members)])
    for st in run.students:
        body.append([f"Student {st.name}", arch(st), fmt_int(st.num_parameters), epochs(st), stopped_by([st])])
    if not body:
        return lines[0] + "\n\nNo trained models found.\n"
    lines.append(md_table(["Model", "Architecture", "Parameters", "Epochs", "Stopped by"], body, "llrrl"))
    lines += ["", "*Stopped by*: **newbob** = converged (the dev gain fell below the stop threshold while the learning "
              "rate was being halved); **epoch cap** = `--epochs` reached first, so the model was still improving."]
    return "\n".join(lines) + "\n"


def _alignment_section(run: RunSummary) -> str:
    a = run.alignment
    if not a:
        return f"No alignment report (`{run.cfg.path(run.cfg.alignment) / 'report.json'}`).\n"
    body = []
    for split, s in sorted(a.get("splits", {}).items(), key=lambda kv: split_sort_key(kv[0])):
        body.append([split, fmt_int(s.get("utterances")), fmt_int(s.get("aligned")), fmt_int(s.get("failed")),
                     fmt(100 * s["fraction_aligned"] if s.get("fraction_aligned") is not None else None, 1),
                     fmt(s.get("avg_loglik"), 3), fmt_int(s.get("aligned_frames"))])
    lines = [md_table(["Split", "Utterances", "Aligned", "Failed", "Aligned (%)", "Avg loglik/frame",
                       "Aligned frames"], body) if body else "No per-split alignment results.", ""]
    tri = a.get("tri", {})
    lines.append(f"Tied states: {fmt_int(a.get('num_tied_states'))}, used on train: {fmt_int(a.get('states_used'))}; "
                 f"monophone pdfs: {fmt_int(a.get('mono', {}).get('num_pdfs'))}, triphone Gaussians: "
                 f"{fmt_int(tri.get('num_gauss'))}; alignment stage {fmt(a.get('seconds'), 0)} s.")
    stages = a.get("by_stage") or {}
    if stages:  # the same splits aligned by every triphone system (--lda-mllt, --sat) and by the DNNs (--nnet-align)
        rows = []
        for name, per_split in stages.items():
            for split, v in sorted(per_split.items(), key=lambda kv: split_sort_key(kv[0])):
                near = v.get("nearest_within") or {}
                rows.append([name, split, fmt(v.get("avg_loglik"), 2),
                             *[fmt(100 * near[t] if near.get(t) is not None else None, 1) for t in ("0.01", "0.02", "0.03")]])
        lines += ["", f"Final system: `{a.get('final_system')}`. Every split aligned by each triphone system, and, in "
                      "`*_nnet`, by the teachers' ensemble on its HMMs (`asr-kd align`; log-likelihoods are of different "
                      "feature spaces or models; boundaries: share of reference phone boundaries with one of ours within "
                      "10 / 20 / 30 ms):", "",
                  md_table(["System", "Split", "Avg loglik/frame", "<= 10 ms (%)", "<= 20 ms (%)", "<= 30 ms (%)"], rows,
                           "llrrrr")]
    for png, alt in (("occupancy.png", "state occupancy"), ("boundary_offsets.png", "phone-boundary offsets")):
        f = run.cfg.path(run.cfg.alignment) / png
        if f.is_file():
            lines.append(f"\n![{alt}]({_rel(f, run.cfg.out_path.parent)})")
    return "\n".join(lines) + "\n"


def _vocabulary_line(run: RunSummary) -> str:
    g = run.graph or {}
    lang = (g.get("paths") or {}).get("words.txt")
    src = f" (`{Path(lang).parent}`)" if lang else ""
    return (f"Decoding vocabulary: {fmt_int(run.graph_words)} words of the graph's `words.txt`{src}; a reference "
            "word outside it is an OOV and counts as an error. OOV rate = running reference words outside the "
            "vocabulary / all reference words.")


def _decode_section(run: RunSummary) -> str:
    if not run.wer:
        return f"No decoding results yet (`{run.cfg.path(run.cfg.decode)}/<model>/<split>/wer.json`).\n"
    body = []
    tuned = False
    for name in run.decode_order():
        for split, w in sorted(run.wer[name].items(), key=lambda kv: split_sort_key(kv[0])):
            point = w.get("one_best")
            tuned |= bool(point)
            refs = w.get("ref_words")
            oov = 100.0 * w["oov_ref_words"] / refs if refs and w.get("oov_ref_words") is not None else None
            body.append([name, split, fmt(w.get("wer")), f"{fmt_int(w.get('errors'))} / {fmt_int(refs)}",
                         "/".join(fmt_int(w.get(k)) for k in ("substitutions", "deletions", "insertions")),
                         f"{fmt(point[0], 3)} ({fmt(1 / point[0], 2)})" if point else DASH,
                         fmt(point[1], 1) if point else DASH,
                         fmt(w.get("untuned_wer")), fmt(oov),
                         f"{fmt_int(w.get('failed'))} / {fmt_int(w.get('utterances'))}", fmt(w.get("rtf"), 3)])
    table = md_table(["Model", "Split", "WER (%)", "Errors / words", "S/D/I", "Acoustic scale (LM weight)",
                      "Ins. penalty", "WER at decoding scale (%)", "OOV (%)", "Failed / utts", "RTF"], body,
                     "llrrrrrrrrr")
    lines = [_vocabulary_line(run), "", table]
    if tuned:
        lines += ["", "WER (%) is the lattice one-best at the acoustic scale (LM weight = 1 / scale) and word "
                  "insertion penalty with the fewest errors on the dev lattices of the same model (`sweep.json`); "
                  "test uses dev's point and never selects" +
                  (" (a one-pass search at dev's acoustic scale where dev's best penalty is 0, its beam widened by "
                   "that scale / the decoding scale: `decode --tuned-one-pass`, no lattice, so no untuned number)"
                   if any(w.get("search") == "one-pass" for d in run.wer.values() for w in d.values()) else "") +
                  ". *WER at decoding scale* is the untuned one-best "
                  "(the decoding acoustic scale, no penalty). Table 1 reports the tuned WER."]
    rescored = _rescore_table(run)
    if rescored:
        lines += ["", rescored]
    for r in run.decode_speed:
        body = [[fmt(x["beam"], 1), fmt(x["rtf"], 4), fmt(x["cpu_rtf"], 4), fmt(x["wer"]),
                 fmt_int(x["failed"])] for x in r["rows"]]
        lines += ["", f"Decoding speed (`asr-kd decode-speed`): `{r['export']}` on {r['split']} "
                  f"({fmt(r['audio_seconds'], 0)} s of audio, {r['utterances']} utterances), one-pass search at "
                  f"acoustic scale {r['acoustic_scale']:g}" + (f" (dev's best, `{r['tuned_on']}`)" if r.get("tuned_on")
                                                                else "") +
                  f", max-active {r['max_active']}, {r['num_jobs']} decoder process(es); the acoustic model's "
                  f"scoring ({fmt(r['scoring_seconds'], 1)} s) is not in the RTF:", "",
                  md_table(["Beam", "RTF (wall)", "RTF (CPU, one core)", "WER (%)", "Failed"], body, "rrrrr")]
    return "\n".join(lines) + "\n"


def _rescore_table(run: RunSummary) -> str:
    """First pass vs LM-rescored lattices (``decode --rescore-arpa``), each at its own dev-tuned point."""
    body, lms = [], set()
    for name in run.decode_order():
        for split, w in sorted(run.wer[name].items(), key=lambda kv: split_sort_key(kv[0])):
            r = w.get("rescored")
            if not r:
                continue
            lms.add(Path(r["rescore_arpa"]).name)
            p = r["one_best"]
            body.append([name, split, fmt(w.get("wer")), fmt(r["wer"]), fmt(r["wer"] - w["wer"]),
                         f"{fmt(p[0], 3)} ({fmt(1 / p[0], 2)})", fmt(p[1], 1)])
    if not body:
        return ""
    table = md_table(["Model", "Split", "First pass WER (%)", "Rescored WER (%)", "Change", "Acoustic scale "
                      "(LM weight)", "Ins. penalty"], body, "llrrrrr")
    return ("LM rescoring with " + ", ".join(f"`{x}`" for x in sorted(lms)) + " (`decode --rescore-arpa`: the "
            "graph LM's score of every word sequence of each lattice replaced by the bigger LM's by composition "
            "with both G.fsts, as Kaldi's `lmrescore.sh`; the LM weight and penalty re-tuned on the rescored dev "
            "lattices, test at dev's point; *First pass*: the same lattices' best path at the first pass's own "
            "dev-tuned point; the scale and penalty columns are the rescored ones):\n\n" + table)


def _times_section(run: RunSummary) -> str:
    if not run.stage_times:
        return f"No stage markers (`{run.cfg.path(run.cfg.done)}/<step>.done`).\n"
    body = [[name, fmt_int(s) if s is not None else f"{DASH} (marker holds {raw!r})", fmt_seconds(s)]
            for name, s, raw in run.stage_times]
    total = sum(s for _, s, _ in run.stage_times if s is not None)
    body.append(["**total**", f"**{total:,}**", f"**{fmt_seconds(total)}**"])
    return md_table(["Step (in order of completion)", "Seconds", "h:mm:ss"], body) + "\n"


def _rel(path: Path, start: Path) -> str:
    try:
        return os.path.relpath(path, start)
    except ValueError:
        return str(path)


def render(run: RunSummary, plots: dict[str, Path], notes: dict[str, str] | None = None) -> str:
    """The whole report.md."""
    notes = notes or {}
    cfg = run.cfg
    now = datetime.datetime.now().astimezone().strftime("%Y-%m-%d %H:%M:%S %Z")
    out_dir = cfg.out_path.parent
    parts = [
        f"# asr-kd report: `{Path(cfg.exp).resolve()}`",
        "",
        f"Generated {now} by `asr-kd report` from this run's own files (listed under *Sources*). "
        f"Frame accuracy is over aligned frames; WER through the decoding graph; \"{DASH}\" = not produced (yet).",
        "",
        "## Table 1: baseline, ensemble and distilled model",
        "",
        table1_markdown(run),
        "## Teacher ensemble members",
        "",
        _members_section(run),
        "## Temperature sweep",
        "",
        _sweep_section(run),
        "## Soft targets as a regularizer (paper section 6)",
        "",
        _regularizer_section(run),
        "## Corpus",
        "",
        _corpus_section(run),
        "## Models",
        "",
        _models_section(run),
        "## Alignment",
        "",
        _alignment_section(run),
        "## Decoding",
        "",
        _decode_section(run),
        "## Wall time per stage",
        "",
        _times_section(run),
        "## Plots",
        "",
    ]
    titles = {"training_curves": "Training curves", "frame_acc_vs_T": "Frame accuracy vs temperature",
              "wer_per_model": "WER per model", "decode_speed": "WER vs decoding speed"}
    for key, title in titles.items():
        if key in plots:
            parts += [f"### {title}", "", f"![{title}]({_rel(plots[key], out_dir)})", ""]
        else:
            parts += [f"### {title}", "", f"Left out: {notes.get(key, 'no data')}.", ""]
    parts += ["## Sources", "", "Frame accuracies from: " + (", ".join(f"`{s}`" for s in sorted(run.acc_sources))
                                                            or DASH) + ".", "",
              "<details><summary>All files read</summary>", "",
              "\n".join(f"- `{s}`" for s in dict.fromkeys(run.sources)) or DASH, "", "</details>", ""]
    return "\n".join(parts)

