"""Training schedule of the HMM-GMM systems: flat start, GMM initialisation, Kaldi-style EM iterations.

:func:`flat_start_labels` splits every utterance equally over the monophone states of its transcript
(Kaldi's ``align-equal-compiled``), :func:`init_gmm` puts one Gaussian on each pdf (``gmm-init-mono`` /
``gmm-init-model``), and :func:`train_system` runs ``train_mono.sh`` / ``train_deltas.sh``'s schedule:
realignment on the listed iterations, statistics, M-step, transition update and mixture splitting
up to the target number of Gaussians over the first three quarters of the iterations; with MLLT iterations
(``train_lda_mllt.sh``) it also re-estimates the front end's matrix on those.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Sequence

import numpy as np
import torch

from asr_base.io import write_json, write_text
from data_prep.align.front_end import FrontEnd
from data_prep.align.gmm import DiagGmmSet, GmmUpdateConfig, single_gaussian_stats
from data_prep.align.hmm import AlignOptions, HmmModel, equal_align_states, write_final_mdl
from data_prep.align.lda_mllt import estimate_mllt
from data_prep.align.passes import Aligner
from data_prep.align.split_data import SplitData, read_frames, split_speakers, utterance_ranges

log = logging.getLogger(__name__)


def flat_start_labels(split: SplitData, hmm: HmmModel, lang,
                      rows: np.ndarray | None = None) -> tuple[np.ndarray, dict[int, str]]:
    """Equal alignment of each utterance over the monophone states of ``SIL words SIL`` (pdf per frame).

    Only ``rows`` (default: all) are labelled; every other frame is -1."""
    labels = np.full(split.num_frames, -1, dtype=np.int32)
    skipped: dict[int, str] = {}
    sil = lang.phones[lang.optional_silence]
    rows = range(len(split.utt_ids)) if rows is None else [int(r) for r in rows]
    for r in rows:  # per utterance; the frames of one are split vectorised
        ws = split.word_strs[r]
        if ws is None:
            skipped[r] = "no transcript"
            continue
        phones = [sil] + [lang.phones[p] for w in ws for p in lang.lexicon[w][0]] + [sil]
        pdfs = np.asarray([hmm.pdf_of(p, c) for p in phones for c in range(lang.num_pdf_classes(p))], dtype=np.int32)
        n = int(split.lengths[r])
        if n < pdfs.size:
            skipped[r] = f"too short for flat start ({n} frames < {pdfs.size} states)"
            continue
        s = int(split.starts[r])
        labels[s:s + n] = pdfs[equal_align_states(n, pdfs.size)]
    return labels, skipped


def shortest_rows(split: SplitData, n: int) -> np.ndarray:
    """Rows of the ``n`` shortest utterances that have a transcript (Kaldi's ``subset_data_dir.sh --shortest``),
    in store order; ``n <= 0`` or ``n >=`` the number of utterances: all of them."""
    has_text = np.asarray([w is not None for w in split.words], dtype=bool)
    cand = np.flatnonzero(has_text)
    if n <= 0 or n >= cand.size:
        return np.arange(len(split.utt_ids))
    return np.sort(cand[np.argsort(split.lengths[cand], kind="stable")[:n]])


def init_gmm(split: SplitData, labels: np.ndarray, num_pdfs: int, front: FrontEnd = FrontEnd()) -> DiagGmmSet:
    """One Gaussian per pdf from frame labels (``-1``: not used), over runs of whole utterances."""
    feats = np.load(Path(split.store_dir) / "feats.npy", mmap_mode="r")
    stats = None
    for lo, hi, rows in utterance_ranges(split):
        x = read_frames(feats, split.starts[rows], split.lengths[rows], front, split_speakers(split, rows))
        st = single_gaussian_stats(x, labels[lo:hi], num_pdfs)
        stats = st if stats is None else stats.add_(st)
    return DiagGmmSet.from_single_stats(stats)


def train_system(aligner: Aligner, split: SplitData, hmm: HmmModel, gmm: DiagGmmSet, labels: np.ndarray,
                 iters: int, realign_iters: Sequence[int], target_gauss: int, opts: AlignOptions, name: str,
                 seed: int = 0, rows: np.ndarray | None = None, front: FrontEnd = FrontEnd(),
                 mllt_iters: Sequence[int] = (),
                 fmllr_iters: Sequence[int] = ()) -> tuple[DiagGmmSet, np.ndarray, list[dict], FrontEnd]:
    """Kaldi-style training iterations. Returns the model, the transition ids of the last alignment,
    per-iteration records (average per-frame log-likelihood, Gaussians, aligned/failed counts) and the front end
    (changed only by MLLT).

    ``rows`` restricts training to those utterances (e.g. the monophone subset); ``labels`` must be -1
    outside them. On the iterations of ``mllt_iters`` an MLLT pass over the current alignment comes first:
    its transform ``A`` is composed into ``front``'s matrix and the means become ``A mu`` (Kaldi's
    ``gmm-acc-mllt``, ``est-mllt``, ``gmm-transform-means``, ``compose-transforms``); the iteration's own pass then
    sees the new features. (Kaldi realigns before the MLLT pass of an iteration that does both; here the MLLT
    uses the previous alignment, so one pass does the realignment and the statistics.) On ``fmllr_iters`` an fMLLR
    pass likewise re-estimates every speaker's transform from the current model (``train_sat.sh``'s
    ``gmm-est-fmllr``; ``front``'s speaker transforms are the starting point and are replaced)."""
    if mllt_iters and front.matrix is None:
        raise ValueError(f"{name}: MLLT needs a front end with a matrix (splice + LDA)")
    gen = torch.Generator().manual_seed(seed)
    tids = np.zeros(split.num_frames, dtype=np.int32)
    inc_iters = max(1, int(iters * 0.75))  # grow Gaussians over the first 3/4 of the iterations
    start_g = gmm.num_gauss
    if target_gauss < gmm.num_pdfs:
        raise ValueError(f"{name}: {target_gauss} Gaussians in all is below its {gmm.num_pdfs} states; every state "
                         f"would keep one Gaussian (give at least one per state, Kaldi uses ~8-20)")
    history = []
    have_tids = False
    upd = GmmUpdateConfig()
    for it in range(1, iters + 1):
        realign = it in set(realign_iters)
        mllt_gain = mllt_seconds = fmllr_gain = fmllr_seconds = None
        if it in set(fmllr_iters):
            front, fmllr_gain, fmllr_seconds = update_speaker_transforms(aligner, split, hmm, gmm, opts, labels,
                                                                         front, f"{name} it{it} fmllr", rows)
        if it in set(mllt_iters):
            ms = aligner.run_pass(split, hmm, gmm, opts, realign=False, accumulate=False, labels=labels, rows=rows,
                                  desc=f"{name} it{it} mllt", front=front, mllt=True)
            if ms.mllt is None:
                raise RuntimeError(f"{name} iteration {it}: no utterance for the MLLT statistics")
            a, mllt_gain = estimate_mllt(*ms.mllt)
            mllt_seconds = round(ms.seconds, 2)
            a = a.astype(np.float32).astype(np.float64)  # as final.mat stores it, so a resumed run is identical
            front = front.with_matrix(a @ front.matrix)
            gmm = gmm.transform_means(a)
        if realign:
            opts_it = opts
            summ = aligner.run_pass(split, hmm, gmm, opts_it, realign=True, accumulate=True, labels=labels, tids=tids,
                                    rows=rows, desc=f"{name} it{it} align+acc", front=front)
            have_tids = True
        else:
            summ = aligner.run_pass(split, hmm, gmm, opts, realign=False, accumulate=True, labels=labels,
                                    desc=f"{name} it{it} acc", front=front)
        if summ.stats is None:
            raise RuntimeError(f"{name} iteration {it}: no utterance could be used (all failed)")
        ll = summ.stats.avg_loglik
        gmm = gmm.update(summ.stats, upd)
        trans_objf = None
        if realign and summ.tid_counts is not None:
            trans_objf = hmm.update_transitions(summ.tid_counts)
        if it <= inc_iters:
            target = start_g + int(round((target_gauss - start_g) * it / inc_iters))
            pdf_occ = torch.zeros(gmm.num_pdfs, dtype=torch.float64).index_add_(0, gmm.gauss2pdf, summ.stats.occ)
            gmm = gmm.split(target, pdf_occ, upd, gen)
        rec = dict(iter=it, realigned=realign, avg_loglik=ll, frames=summ.stats.frames, num_gauss=gmm.num_gauss,
                   aligned=summ.aligned, failed=len(summ.failed), seconds=round(summ.seconds, 2))
        if trans_objf is not None:
            rec["transition_objf_per_frame"] = trans_objf
        if mllt_gain is not None:
            rec.update(mllt_objf_gain_per_frame=mllt_gain, mllt_seconds=mllt_seconds)
        if fmllr_gain is not None:
            rec.update(fmllr_objf_gain_per_frame=fmllr_gain, fmllr_seconds=fmllr_seconds)
        history.append(rec)
        log.info("%s iter %d: avg loglik/frame %.4f over %d frames, %d Gaussians (%.2f per state)%s", name, it, ll,
                 summ.stats.frames, gmm.num_gauss, gmm.num_gauss / gmm.num_pdfs,
                 f", realigned {summ.aligned} ok / {len(summ.failed)} failed" if realign else "")
    if not have_tids:
        raise RuntimeError(f"{name}: no realignment iteration (need at least one in the realign list)")
    return gmm, tids, history, front


def update_speaker_transforms(aligner: Aligner, split: SplitData, hmm: HmmModel, gmm: DiagGmmSet,
                              opts: AlignOptions, labels: np.ndarray, front: FrontEnd, desc: str,
                              rows: np.ndarray | None = None) -> tuple[FrontEnd, float, float]:
    """One fMLLR pass over the alignment ``labels`` and a new transform per speaker (from its current one);
    returns the front end with them, the average objective gain per frame and the pass's seconds."""
    from data_prep.align.fmllr import estimate_fmllr

    summ = aligner.run_pass(split, hmm, gmm, opts, realign=False, accumulate=False, labels=labels, rows=rows,
                            desc=desc, front=front, fmllr=True)
    if not summ.fmllr:
        raise RuntimeError(f"{desc}: no aligned frames for the fMLLR statistics")
    old = front.speakers or {}
    new, gain, frames = {}, 0.0, 0.0
    for spk, st in sorted(summ.fmllr.items()):
        new[spk], g = estimate_fmllr(st, old.get(spk))
        new[spk] = new[spk].astype(np.float32).astype(np.float64)  # as trans.* stores it (identical on resume)
        gain += g * st.beta
        frames += st.beta
    gain /= max(frames, 1.0)
    log.info("%s: fMLLR for %d speakers, objective gain %.4f per frame", desc, len(new), gain)
    return front.with_speakers(new), gain, round(summ.seconds, 2)


def save_system(d: Path, hmm: HmmModel, gmm: DiagGmmSet, history: list[dict], extra: dict | None = None) -> None:
    write_final_mdl(d / "final.mdl", hmm, gmm)
    write_text(d / "num_pdfs", f"{hmm.num_pdfs}\n")
    write_json(d / "history.json", history)
