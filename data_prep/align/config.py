"""Options of ``data-prep align`` (:class:`AlignStageConfig`), one typed field per command-line flag."""

from __future__ import annotations

from dataclasses import dataclass

from asr_base.config import option


@dataclass
class AlignStageConfig:
    """Every option of the stage; which of them each sub-stage depends on is in :mod:`data_prep.align.substages`."""

    lang: str = option("data/lang", help="lang dir (data-prep prepare-lang)")
    fbank_dir: str = option("data/fbank", help="feature stores: <fbank-dir>/<split> (fbank, or MFCC as in Kaldi: "
                                               "compute-fbank --feature-type mfcc; the labels are 1:1 with its frames)")
    data_dir: str = option("data", help="Kaldi data dirs: <data-dir>/<split>/text")
    exp: str = option("exp", help="writes <exp>/mono and <exp>/tri")
    train_split: str = option("train", help="split the models are trained on")
    splits: list[str] = option(["train", "dev", "test"], help="splits to align with the final model")
    deltas: int = option(0, group="features",
                         help="append delta features of this order on the fly (Kaldi's add-deltas, window 2: 2 = "
                              "deltas + delta-deltas, Kaldi's train_mono / train_deltas front end on 13-dim MFCC "
                              "stores); 0 = the store's features as they are")
    mono_subset: int = option(1000, group="monophones",
                              help="train the monophones on the N shortest train utterances (0 = all); the tree "
                                   "statistics come from aligning the whole train split with the final monophones")
    mono_iters: int = option(25, group="monophones", help="monophone training iterations")
    mono_realign: list[int] = option([1, 2, 3, 4, 5, 6, 8, 10, 12, 14, 16, 18, 20, 23], group="monophones",
                                     help="monophone iterations with Viterbi realignment (space/comma separated)")
    mono_gauss: int = option(1000, group="monophones", help="total monophone Gaussians")
    num_leaves: int = option(800, group="decision tree", help="tied states (decision-tree leaves)")
    tree_min_count: float = option(100.0, group="decision tree", help="min frames per tree leaf")
    tri_iters: int = option(15, group="triphones", help="triphone training iterations")
    tri_realign: list[int] = option([4, 8, 12], group="triphones",
                                    help="triphone iterations with Viterbi realignment (space/comma separated)")
    tri_gauss: int = option(4000, group="triphones", help="total triphone Gaussians")
    lda_mllt: bool = option(False, group="LDA+MLLT (tri2)",
                            help="after tri, train Kaldi's tri2 (train_lda_mllt.sh) in <exp>/tri2: the store's static "
                                 "features spliced +-SPLICE frames, LDA to LDA_DIM dims on tri's tied states, a new "
                                 "tree, MLLT on --mllt-iters; every split is then aligned with tri2 as well "
                                 "(<exp>/tri2/ali, the labels to use) and report.json goes to <exp>/tri2")
    splice: int = option(3, group="LDA+MLLT (tri2)", help="frames spliced each side before the LDA (Kaldi: 3)")
    lda_dim: int = option(40, group="LDA+MLLT (tri2)", help="LDA output dimension (Kaldi: 40)")
    lda_leaves: int = option(0, group="LDA+MLLT (tri2)", help="tri2 tied states (0 = --num-leaves)")
    lda_gauss: int = option(0, group="LDA+MLLT (tri2)", help="total tri2 Gaussians (0 = --tri-gauss)")
    lda_iters: int = option(15, group="LDA+MLLT (tri2)", help="tri2 training iterations")
    lda_realign: list[int] = option([4, 8, 12], group="LDA+MLLT (tri2)", help="tri2 iterations with realignment")
    mllt_iters: list[int] = option([2, 4, 6], group="LDA+MLLT (tri2)",
                                   help="tri2 iterations that re-estimate the MLLT first (Kaldi: 2 4 6 12 of 35)")
    sat: bool = option(False, group="SAT (tri3)",
                       help="after tri2 (needs --lda-mllt), train Kaldi's tri3 (train_sat.sh) in <exp>/tri3: per-speaker "
                            "fMLLR on tri2's features, a new tree, fMLLR re-estimated on --fmllr-iters; every split "
                            "is aligned as align_fmllr.sh does (fMLLR from tri2's alignment, then realigned) into "
                            "<exp>/tri3/ali, the labels to use, and report.json goes to <exp>/tri3")
    sat_leaves: int = option(0, group="SAT (tri3)", help="tri3 tied states (0 = those of tri2)")
    sat_gauss: int = option(0, group="SAT (tri3)", help="total tri3 Gaussians (0 = those of tri2)")
    sat_iters: int = option(15, group="SAT (tri3)", help="tri3 training iterations")
    sat_realign: list[int] = option([4, 8, 12], group="SAT (tri3)", help="tri3 iterations with realignment")
    fmllr_iters: list[int] = option([2, 4, 6], group="SAT (tri3)",
                                    help="tri3 iterations that re-estimate every speaker's fMLLR first (Kaldi: 2 4 6 "
                                         "12 of 35)")
    beam: float = option(10.0, group="alignment", help="Viterbi beam (Kaldi's --beam)")
    retry_beam: float = option(40.0, group="alignment",
                               help="beam of the second try for an utterance that fails at --beam (Kaldi's --retry-beam)")
    jobs: int = option(2, group="resources", help="alignment/accumulation processes")
    chunk_frames: int = option(20000, group="resources", help="frames per work chunk")
    seed: int = option(0, help="seed of the mixture-splitting perturbations (the triphones use seed + 1)")
    max_oov_rate: float = option(0.5, group="transcripts",
                                 help="leave out (list in failed.tsv) an utterance whose fraction of words without a "
                                      "pronunciation is above this: aligning it would be mostly <UNK> = spoken noise "
                                      "(1 = keep all); the OOV rate of every split goes into report.json")
    reference_timings: str | None = option(None, help="optional reference phone timings <dir>/<split>/<utt>.txt "
                                                      "(start end phone, flite names); boundary agreement of the "
                                                      "final alignment goes into report.json")
    force: bool = option(False, help="redo every sub-stage")

    def __post_init__(self) -> None:
        if not 0 <= self.deltas <= 3:
            raise ValueError(f"--deltas must be 0..3, got {self.deltas}")
        if self.lda_mllt and not (0 < self.lda_dim and 0 < self.splice):
            raise ValueError("--lda-mllt needs --lda-dim > 0 and --splice > 0")
        if self.sat and not self.lda_mllt:
            raise ValueError("--sat trains on tri2's features: it needs --lda-mllt")
        for system, on, flags in (("tri2", self.lda_mllt, "--lda-gauss / --lda-leaves"),
                                  ("tri3", self.sat, "--sat-gauss / --sat-leaves")):
            leaves, gauss = self.budget(system)
            if on and gauss < leaves:
                raise ValueError(f"the {system} Gaussian budget {gauss} is below its {leaves} leaves ({flags}): give "
                                 f"at least one Gaussian per tied state")
        if not 0.0 <= self.max_oov_rate <= 1.0:
            raise ValueError(f"--max-oov-rate must be in [0, 1], got {self.max_oov_rate}")
        # A Gaussian budget below the number of states would leave every state with ONE Gaussian (splitting
        # never removes any): say so before hours of training, not after.
        if self.tri_gauss < self.num_leaves:
            raise ValueError(f"--tri-gauss {self.tri_gauss} is below --num-leaves {self.num_leaves}: the total "
                             f"Gaussian budget must be at least one per tied state (Kaldi: ~8-20 per state, "
                             f"e.g. 4200 leaves / 40000 Gaussians)")

    def budget(self, system: str) -> tuple[int, int]:
        """``(leaves, total Gaussians)`` of ``tri``, ``tri2`` or ``tri3``: a later system's 0 means the previous one's."""
        leaves, gauss = self.num_leaves, self.tri_gauss
        for name, lv, g in (("tri2", self.lda_leaves, self.lda_gauss), ("tri3", self.sat_leaves, self.sat_gauss)):
            if system == "tri":
                break
            leaves, gauss = lv or leaves, g or gauss
            if system == name:
                break
        return leaves, gauss
