"""``asr-kd make-graph``: the HCLG decoding graph (Kaldi's ``mkgraph.sh`` with kaldifst + kaldi-hmm-gmm).

Steps (Kaldi conventions):

1. **G** from the ARPA file with ``kaldilm.arpa2fst`` (``#0`` on back-off arcs, ``<s>``/``</s>`` -> eps),
   using the lang dir's ``words.txt`` as symbol table.
2. **LG** = ``determinize_star(compose(L_disambig, G))``, then ``minimize_encoded``.
3. **CLG** with ``kaldifst.compose_context`` (context width / central position of the tree); its input
   labels index ``ilabels`` (phone windows).
4. **H** with ``kaldi_hmm_gmm.get_h_transducer`` from the tree (ContextDependency) and the transition
   model; **HCLGa** = ``compose(H, CLG)``, determinized, transition-id disambiguation symbols removed
   (-> eps), epsilons removed, minimized.
5. **HCLG** = ``kaldi_hmm_gmm.add_self_loops`` (self-loop scale 0.1, reorder); finally the input labels
   are mapped transition-id -> pdf-id + 1 (label 0 stays epsilon) so that a (frames x pdfs) matrix of
   scaled log-likelihoods decodes directly through ``DecodableCtc``; the graph is arc-sorted on input.

Output directory: ``HCLG.fst`` (pdf+1 input labels, word-id output labels), ``words.txt``,
``phones.txt``, ``num_pdfs``, ``manifest.json`` (input paths and digests + config + graph stats) and
``.stamp.json`` (:mod:`asr_base.stamp`): the build is skipped when every input and option is unchanged,
and the log says which one changed otherwise (``--force`` rebuilds).
"""

from __future__ import annotations

import argparse
import functools
import logging
import os
import shutil
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from asr_base.config import add_options, from_args, option
from asr_base.io import atomic_path, write_json
from asr_base.stamp import STAMP_NAME, Step
from asr_base.kaldi import kaldi_hmm_gmm, kaldifst, kaldilm, load_context_dependency  # noqa: F401 (re-exported)

log = logging.getLogger(__name__)

MANIFEST = "manifest.json"
HCLG = "HCLG.fst"


@dataclass
class GraphConfig:
    self_loop_scale: float = option(0.1, help="scale of HMM self-loop log-probs")
    transition_scale: float = option(1.0, help="scale of other transition log-probs")
    determinize_max_states: int = option(-1, flag="--max-states", help="determinization state limit (-1: none)")


# --------------------------------------------------------------------------------------------------
# Loading the acoustic-model side: tree and transition model


def monophone_context_dependency(lang) -> "kaldi_hmm_gmm.ContextDependency":
    """Monophone tree of a lang dir (one pdf per phone and pdf class), e.g. for a monophone system."""
    ids = lang.real_phone_ids
    ncls = [0] * (max(ids) + 1)
    for p in ids:
        ncls[p] = lang.num_pdf_classes(p)
    return kaldi_hmm_gmm.monophone_context_dependency(ids, ncls)


def load_transition_model(ctx_dep, topo, model_path: str | os.PathLike | None = None):
    """The transition model of the aligned system.

    With ``model_path`` (``exp/tri/final.mdl``) the trained transition probabilities are restored with
    the aligner's reader (``data_prep.align.hmm.load_hmm``). Without it a TransitionModel is built from
    tree + topology: the same transition-id -> pdf map, with the topology's initial probabilities.
    """
    if model_path is not None:
        from data_prep.align.hmm import load_hmm

        log.info("transition model from %s", model_path)
        return load_hmm(model_path, topo, ctx_dep)[0].tm
    log.warning("no final.mdl given: HCLG uses the topology's initial transition probabilities")
    return kaldi_hmm_gmm.TransitionModel(ctx_dep, topo)


# --------------------------------------------------------------------------------------------------
# FST helpers


def read_fst(path: str | os.PathLike):
    if not Path(path).is_file():
        raise FileNotFoundError(f"FST {path} not found")
    return kaldifst.StdVectorFst.read(str(path))


def write_fst(fst, path: str | os.PathLike) -> None:
    with atomic_path(path) as tmp:
        if not fst.write(str(tmp)):
            raise OSError(f"could not write {path}")


def num_arcs(fst) -> int:
    return sum(fst.num_arcs(s) for s in range(fst.num_states))


def map_input_labels(fst, table: np.ndarray):
    """A copy of ``fst`` with every arc's input label ``i`` replaced by ``table[i]`` (``table[0]`` must be 0).

    Done in C++ as a composition with a one-state relabelling transducer (arcs ``table[i]:i``), which
    keeps the topology and weights; it is ~10x faster than editing millions of arcs from Python (kaldifst
    has no mutable arc iterator that respects copy-on-write anyway). Labels mapped to 0 become epsilons.
    """
    table = np.asarray(table, dtype=np.int64)
    if table[0] != 0:
        raise ValueError("label 0 (epsilon) must map to 0")
    relabel = kaldifst.StdVectorFst()
    s = relabel.add_state()
    relabel.start = s
    relabel.set_final(s, 0.0)
    for old, new in enumerate(table.tolist()):
        if old:
            relabel.add_arc(s, kaldifst.StdArc(int(new), old, 0.0, s))
    kaldifst.arcsort(relabel, sort_type="olabel")
    return kaldifst.compose(relabel, fst, connect=False)


def make_g(arpa: str | os.PathLike, words_txt: str | os.PathLike):
    """G.fst from an ARPA file (kaldilm; ``#0`` on back-off arcs), arc-sorted on input labels."""
    with tempfile.TemporaryDirectory() as d:
        out = Path(d) / "G.fst"
        kaldilm.arpa2fst(str(arpa), str(out), disambig_symbol="#0", read_symbol_table=str(words_txt),
                         max_arpa_warnings=10)
        if not out.is_file():
            raise RuntimeError(f"kaldilm could not convert {arpa}")
        G = read_fst(out)
    kaldifst.arcsort(G, sort_type="ilabel")
    return G


def make_lg(L_disambig, G, max_states: int = -1):
    kaldifst.arcsort(L_disambig, sort_type="olabel")
    LG = kaldifst.compose(L_disambig, G)
    if LG.num_states == 0:
        raise RuntimeError("L o G is empty: do the lexicon words and the LM vocabulary overlap?")
    if kaldifst.determinize_star(LG, max_states=max_states, use_log=True):  # True means: stopped early
        log.warning("determinization of LG stopped at max_states=%d", max_states)
    kaldifst.minimize_encoded(LG)
    return LG


def make_hclg(L_disambig, G, disambig_phone_ids: list[int], ctx_dep, trans_model,
              config: GraphConfig = GraphConfig()) -> tuple[Any, dict[str, Any]]:
    """Build HCLG with pdf-id + 1 input labels; returns (fst, stats).

    ``L_disambig`` and ``G`` may be FSTs or zero-argument functions that load them: given loaders, L and G are
    freed once LG exists, as each intermediate (LG, CLG, H) is once the next one is built, so the peak memory is
    the largest step's, not the sum of all of them (what makes a LibriSpeech-size graph fit)."""
    stats: dict[str, Any] = {}
    t0 = time.perf_counter()
    L_disambig = L_disambig() if callable(L_disambig) else L_disambig
    G = G() if callable(G) else G
    log.info("G: %d states; L_disambig: %d states", G.num_states, L_disambig.num_states)
    LG = make_lg(L_disambig, G, config.determinize_max_states)
    del L_disambig, G  # the caller's loaders hold no reference: both are freed here
    stats["LG"] = {"states": LG.num_states, "arcs": num_arcs(LG)}
    CLG, ilabels = kaldifst.compose_context(list(disambig_phone_ids), ctx_dep.context_width,
                                           ctx_dep.central_position, LG)
    del LG
    kaldifst.arcsort(CLG, sort_type="ilabel")
    stats["CLG"] = {"states": CLG.num_states, "arcs": num_arcs(CLG), "ilabels": len(ilabels)}
    hcfg = kaldi_hmm_gmm.HTransducerConfig()
    hcfg.transition_scale = config.transition_scale
    H, disambig_tids = kaldi_hmm_gmm.get_h_transducer(ilabels, ctx_dep, trans_model, hcfg)
    kaldifst.arcsort(H, sort_type="olabel")
    HCLG = kaldifst.compose(H, CLG)
    del H, CLG
    if kaldifst.determinize_star(HCLG, max_states=config.determinize_max_states, use_log=True):
        log.warning("determinization of HCLGa stopped at max_states=%d", config.determinize_max_states)
    # Remove the transition-id disambiguation symbols, then epsilons, then minimize.
    num_tids = trans_model.num_transition_ids
    top = max([num_tids, *disambig_tids]) + 1
    rm = np.arange(top, dtype=np.int64)
    rm[np.asarray(disambig_tids, dtype=np.int64)] = 0
    HCLG = map_input_labels(HCLG, rm)
    kaldifst.rmepsilon(HCLG)
    kaldifst.minimize_encoded(HCLG)
    HCLG = kaldi_hmm_gmm.add_self_loops(self_loop_scale=config.self_loop_scale, disambig_syms=[], reorder=True,
                                        trans_model=trans_model, ifst=HCLG)
    # transition-id -> pdf-id + 1 (label 0 stays 0).
    tid2pdf = np.asarray(trans_model.transition_id_to_pdf_array(), dtype=np.int64)
    to_pdf1 = np.zeros(num_tids + 1, dtype=np.int64)
    to_pdf1[1:] = tid2pdf[1:num_tids + 1] + 1
    HCLG = map_input_labels(HCLG, to_pdf1)
    kaldifst.arcsort(HCLG, sort_type="ilabel")
    stats["HCLG"] = {"states": HCLG.num_states, "arcs": num_arcs(HCLG)}
    stats["num_pdfs"] = int(trans_model.num_pdfs)
    stats["build_seconds"] = round(time.perf_counter() - t0, 3)
    return HCLG, stats


# --------------------------------------------------------------------------------------------------
# The cached stage


@dataclass
class GraphInputs:
    lang: Path
    arpa: Path
    tree: Path
    model: Path | None = None  # final.mdl (optional: transition probabilities)

    def files(self) -> dict[str, Path]:
        out = {n: self.lang / n for n in ("words.txt", "phones.txt", "L_disambig.fst", "topo", "phones/disambig.int")}
        out.update(arpa=self.arpa, tree=self.tree)
        if self.model is not None:
            out["model"] = self.model
        return out


def graph_step(inputs: GraphInputs, out_dir: Path, config: GraphConfig) -> Step:
    """The up-to-date check of a graph: every input file and the graph options."""
    return Step(out_dir / STAMP_NAME, f"make-graph {out_dir}", config=config, inputs=inputs.files())


def build_graph(inputs: GraphInputs, out_dir: str | os.PathLike, config: GraphConfig = GraphConfig(),
                force: bool = False) -> Path:
    """Build ``out_dir/HCLG.fst`` unless an up-to-date one exists; returns the HCLG path."""
    from data_prep.lang.lang_dir import LangDir, load_topology

    out_dir = Path(out_dir)
    files = inputs.files()
    for name, p in files.items():
        if not Path(p).is_file():
            raise FileNotFoundError(f"make-graph input {name} missing: {p}")
    step = graph_step(inputs, out_dir, config)
    if (out_dir / HCLG).is_file() and step.up_to_date(force):
        return out_dir / HCLG
    lang = LangDir.load(inputs.lang)
    ctx_dep = load_context_dependency(inputs.tree)
    topo = load_topology(lang)
    tm = load_transition_model(ctx_dep, topo, inputs.model)
    t0 = time.perf_counter()
    G = functools.partial(make_g, inputs.arpa, inputs.lang / "words.txt")  # loaded inside make_hclg, freed early
    L = functools.partial(lang.load_l_fst, disambig=True)
    fst, stats = make_hclg(L, G, lang.disambig_phone_ids, ctx_dep, tm, config)
    stats["total_seconds"] = round(time.perf_counter() - t0, 3)
    out_dir.mkdir(parents=True, exist_ok=True)
    write_fst(fst, out_dir / HCLG)
    stats["HCLG"]["bytes"] = (out_dir / HCLG).stat().st_size
    for name in ("words.txt", "phones.txt"):
        with atomic_path(out_dir / name) as tmp:
            shutil.copyfile(inputs.lang / name, tmp)
    with atomic_path(out_dir / "num_pdfs") as tmp:
        tmp.write_text(f"{stats['num_pdfs']}\n")
    write_json(out_dir / MANIFEST, {"inputs": step.digests(), "paths": {k: str(v) for k, v in files.items()},
                                    "config": asdict(config), "stats": stats})
    step.done(num_pdfs=stats["num_pdfs"])
    log.info("HCLG: %d states, %d arcs, %d pdfs, built in %.1f s -> %s", stats["HCLG"]["states"],
             stats["HCLG"]["arcs"], stats["num_pdfs"], stats["total_seconds"], out_dir / HCLG)
    return out_dir / HCLG


@dataclass(kw_only=True)
class MakeGraphConfig:
    """The ``make-graph`` stage: its inputs and output dir (the graph options are :class:`GraphConfig`)."""

    lang: str = option(help="lang dir (data/lang)")
    arpa: str = option(help="ARPA language model (asr-kd make-lm)")
    tree: str = option(help="Kaldi binary tree (exp/tri/tree)")
    model: str | None = option(None, help="exp/tri/final.mdl (trained transition probabilities)")
    out: str = option(help="output graph dir (exp/graph)")
    force: bool = option(False, help="rebuild even if the inputs did not change")

    def inputs(self) -> GraphInputs:
        return GraphInputs(Path(self.lang), Path(self.arpa), Path(self.tree), Path(self.model) if self.model else None)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_options(parser, MakeGraphConfig)
    add_options(parser, GraphConfig, title="graph")


def main(args: argparse.Namespace) -> int:
    job = from_args(MakeGraphConfig, args)
    build_graph(job.inputs(), job.out, from_args(GraphConfig, args), force=job.force)
    return 0
