"""Building the phonetic decision tree from :class:`TreeStats`, following Kaldi's ``build-tree``.

1. One root per center phone (a ``TableEventMap`` on the center phone, key 1). By default each root is
   first split by pdf class (HMM state position; key -1), so every phone state has at least its own pdf
   (Kaldi's "not-shared" roots; ``split_pdf_classes_first=False`` gives "shared" roots where the tree
   asks about the pdf class like any other question).
2. Greedy splitting: the leaf with the best likelihood gain is split next, until ``num_leaves`` or no
   split gains more than ``min_gain``. Candidate questions (:mod:`data_prep.align.tree.questions`) ask
   whether the left (key 0) or right (key 2) phone is in a phone class, or whether the pdf class is in a
   set; the gain of every question of a leaf is computed at once with numpy (stats of a leaf are first
   summed per context phone, then every question is one row of a membership-matrix product). Both
   children must keep ``min_count`` frames. Context-independent phones (silence, spoken noise:
   ``phones/context_indep``) are never split by context, like Kaldi's ``--ci-phones``.
3. Leaf merging: within a root (and pdf class), leaves are clustered bottom-up while merging two costs
   less than ``cluster_thresh`` log-likelihood (Kaldi's default: the smallest split gain accepted in
   step 2). Merged leaves share a pdf.

The result is a :class:`data_prep.align.tree.event_map.TiedStateTree`.
"""

from __future__ import annotations

import heapq
import logging
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING

import numpy as np

from data_prep.align.tree.event_map import CE, SE, TE, EventMapBuilder, TiedStateTree
from data_prep.align.tree.questions import Questions, default_questions
from data_prep.align.tree.stats import TreeStats, gaussian_loglik

if TYPE_CHECKING:  # pragma: no cover
    from data_prep.lang.lang_dir import LangDir

log = logging.getLogger(__name__)


@dataclass
class BuildTreeConfig:
    num_leaves: int = 2000  # maximum number of leaves after splitting (14000 for LibriSpeech 960 h)
    min_count: float = 100.0  # minimum frames in each child of a split (Kaldi's --min-count)
    min_gain: float = 0.0  # a split must gain more than this log-likelihood (Kaldi's --thresh)
    cluster_thresh: float | None = None  # merge leaves costing less; None: the smallest split gain; <0: off
    var_floor: float = 0.01  # absolute variance floor of the Gaussians
    split_pdf_classes_first: bool = True  # one root per (phone, pdf class), like Kaldi's not-shared roots
    context_independent: list[str] | None = None  # phones never split by context; None: lang's silence phones


@dataclass
class _Leaf:
    rows: np.ndarray
    n: float
    s: np.ndarray
    ss: np.ndarray
    ll: float
    group: int  # clustering is restricted to leaves of one group (root)
    ci: bool  # context-independent center phone
    best: tuple | None = None  # (gain, column, question index, yes mask)


def _leaf(stats: TreeStats, rows: np.ndarray, group: int, ci: bool, var_floor: float) -> _Leaf:
    n = float(stats.counts[rows].sum())
    s = stats.sums[rows].sum(0)
    ss = stats.sumsqs[rows].sum(0)
    return _Leaf(rows, n, s, ss, float(gaussian_loglik(n, s, ss, var_floor)), group, ci)


def _find_split(leaf: _Leaf, stats: TreeStats, phone_member: np.ndarray, class_member: np.ndarray | None,
                cfg: BuildTreeConfig) -> None:
    """Best question for ``leaf`` over all phone-set questions on left/right and pdf-class sets."""
    best = None
    if leaf.n < 2 * cfg.min_count or leaf.rows.size < 2:
        leaf.best = None
        return
    cand: list[tuple[int, np.ndarray]] = []
    if not leaf.ci:
        cand += [(0, phone_member), (2, phone_member)]
    if class_member is not None:
        cand.append((3, class_member))
    cnt, sums, sqs = stats.counts[leaf.rows], stats.sums[leaf.rows], stats.sumsqs[leaf.rows]
    for col, member in cand:
        vals = stats.keys[leaf.rows, col].astype(np.int64)
        width = member.shape[1]
        vals = np.where(vals < width, vals, width)  # values no question mentions: always "no"
        mem = np.concatenate([member, np.zeros((member.shape[0], 1), bool)], axis=1)
        onehot = np.zeros((vals.size, width + 1))
        onehot[np.arange(vals.size), vals] = 1.0
        g_n, g_s, g_ss = onehot.T @ cnt, onehot.T @ sums, onehot.T @ sqs  # stats per context value
        y = mem.astype(np.float64)  # (Q, values)
        y_n, y_s, y_ss = y @ g_n, y @ g_s, y @ g_ss
        no_n, no_s, no_ss = leaf.n - y_n, leaf.s - y_s, leaf.ss - y_ss
        gain = (gaussian_loglik(y_n, y_s, y_ss, cfg.var_floor) + gaussian_loglik(no_n, no_s, no_ss, cfg.var_floor)
                - leaf.ll)
        # gains within floating-point noise of zero (identical statistics on both sides) are no gain
        tol = 1e-9 * (abs(leaf.ll) + 1.0)
        ok = (y_n >= cfg.min_count) & (no_n >= cfg.min_count) & (y_n > 0) & (no_n > 0) & (gain > tol)
        if not ok.any():
            continue
        gain = np.where(ok, gain, -np.inf)
        q = int(np.argmax(gain))
        if best is None or gain[q] > best[0]:
            best = (float(gain[q]), col, q, mem[q, vals])
    leaf.best = best


def _cluster_leaves(leaves: list[_Leaf], thresh: float, var_floor: float) -> np.ndarray:
    """Bottom-up merging within groups while the likelihood loss is below ``thresh``.

    Returns the cluster representative (a leaf index) of every leaf.
    """
    rep = np.arange(len(leaves))
    if thresh <= 0:
        return rep
    groups: dict[int, list[int]] = {}
    for i, lf in enumerate(leaves):
        groups.setdefault(lf.group, []).append(i)
    for members in groups.values():
        if len(members) < 2:
            continue
        idx = np.asarray(members)
        n = np.array([leaves[i].n for i in idx])
        s = np.stack([leaves[i].s for i in idx])
        ss = np.stack([leaves[i].ss for i in idx])
        ll = gaussian_loglik(n, s, ss, var_floor)
        m = idx.size
        cost = (ll[:, None] + ll[None, :]
                - gaussian_loglik(n[:, None] + n[None, :], s[:, None] + s[None, :], ss[:, None] + ss[None, :], var_floor))
        alive = np.ones(m, bool)
        np.fill_diagonal(cost, np.inf)
        local_rep = np.arange(m)
        while True:
            flat = int(np.argmin(cost))
            a, b = divmod(flat, m)
            if not np.isfinite(cost[a, b]) or cost[a, b] >= thresh:
                break
            n[a] += n[b]
            s[a] += s[b]
            ss[a] += ss[b]
            ll[a] = gaussian_loglik(n[a], s[a], ss[a], var_floor)
            alive[b] = False
            local_rep[local_rep == b] = a
            cost[b, :] = np.inf
            cost[:, b] = np.inf
            row = ll[a] + ll - gaussian_loglik(n[a] + n, s[a] + s, ss[a] + ss, var_floor)
            row[~alive] = np.inf
            row[a] = np.inf
            cost[a, :] = row
            cost[:, a] = row
        rep[idx] = idx[local_rep]
    return rep


def build_tree(stats: TreeStats, lang: "LangDir", num_leaves: int = 2000, min_count: float = 100.0,
               questions: Questions | None = None, config: BuildTreeConfig | None = None, **overrides) -> TiedStateTree:
    """Cluster the triphone states of ``stats`` into at most ``num_leaves`` tied states (see module doc).

    ``questions`` None uses :func:`default_questions`. Extra keyword arguments override fields of
    :class:`BuildTreeConfig`. Every phone with an HMM in ``lang`` gets pdfs, with or without statistics.
    """
    from tqdm import tqdm

    cfg = config or BuildTreeConfig()
    cfg = BuildTreeConfig(**{**asdict(cfg), "num_leaves": num_leaves, "min_count": min_count, **overrides})
    if cfg.min_count <= 0:
        raise ValueError("min_count must be positive")
    if questions is None:
        questions = default_questions(stats, lang, cfg.var_floor)
    ci_names = lang.silence_phones if cfg.context_independent is None else cfg.context_independent
    ci_ids = {lang.phones[p] for p in ci_names}
    real = lang.real_phone_ids
    num_classes = {p: lang.num_pdf_classes(p) for p in real}
    bad = ~np.isin(stats.keys[:, 1], real)
    if bad.any():
        raise ValueError(f"tree statistics have center phones without HMMs: {np.unique(stats.keys[bad, 1])[:10]}")
    width = 1 + max([max(s) for s in questions.phone_sets] + [max(real)])
    phone_member = np.zeros((max(len(questions.phone_sets), 1), width), bool)
    for i, st in enumerate(questions.phone_sets):
        phone_member[i, list(st)] = True
    class_member = None
    if not cfg.split_pdf_classes_first and questions.pdf_class_sets:
        cw = 1 + max(max(s) for s in questions.pdf_class_sets)
        class_member = np.zeros((len(questions.pdf_class_sets), cw), bool)
        for i, st in enumerate(questions.pdf_class_sets):
            class_member[i, list(st)] = True

    # initial leaves: one per phone (shared roots) or per (phone, pdf class)
    order = np.lexsort((stats.keys[:, 3], stats.keys[:, 1]))
    leaves: list[_Leaf] = []
    roots: dict[tuple[int, int], int] = {}  # (phone, pdf class or -1) -> leaf
    for p in real:
        rows_p = order[stats.keys[order, 1] == p]
        if cfg.split_pdf_classes_first:
            for c in range(num_classes[p]):
                rows = rows_p[stats.keys[rows_p, 3] == c]
                roots[(p, c)] = len(leaves)
                leaves.append(_leaf(stats, rows, len(roots), p in ci_ids, cfg.var_floor))
        else:
            roots[(p, -1)] = len(leaves)
            leaves.append(_leaf(stats, rows_p, len(roots), p in ci_ids, cfg.var_floor))
        bad_class = rows_p[stats.keys[rows_p, 3] >= num_classes[p]]
        if bad_class.size:
            raise ValueError(f"tree statistics have pdf classes >= {num_classes[p]} for phone {p}")
    n_initial = len(leaves)
    if cfg.num_leaves < n_initial:
        log.warning("num_leaves=%d is below the %d initial leaves (phone states); no splits", cfg.num_leaves, n_initial)

    # greedy splitting
    children: dict[int, tuple[int, int, int, tuple[int, ...] | None]] = {}  # leaf -> (col, yes leaf, no leaf, set)
    heap: list[tuple[float, int]] = []
    for i, lf in enumerate(leaves):
        _find_split(lf, stats, phone_member, class_member, cfg)
        if lf.best is not None:
            heapq.heappush(heap, (-lf.best[0], i))
    smallest_gain = np.inf
    total_gain = 0.0
    num_current = n_initial
    with tqdm(total=max(cfg.num_leaves - n_initial, 0), desc="tree splits", unit="split", leave=False) as bar:
        while heap and num_current < cfg.num_leaves:
            neg, i = heapq.heappop(heap)
            gain = -neg
            if gain <= cfg.min_gain:
                break
            lf = leaves[i]
            _, col, q, yes_mask = lf.best
            qset = (questions.phone_sets[q] if col in (0, 2) else questions.pdf_class_sets[q])
            yl = _leaf(stats, lf.rows[yes_mask], lf.group, lf.ci, cfg.var_floor)
            nl = _leaf(stats, lf.rows[~yes_mask], lf.group, lf.ci, cfg.var_floor)
            children[i] = (col, len(leaves), len(leaves) + 1, qset)
            leaves += [yl, nl]
            lf.best = None
            for j in (len(leaves) - 2, len(leaves) - 1):
                _find_split(leaves[j], stats, phone_member, class_member, cfg)
                if leaves[j].best is not None:
                    heapq.heappush(heap, (-leaves[j].best[0], j))
            smallest_gain = min(smallest_gain, gain)
            total_gain += gain
            num_current += 1
            bar.update(1)

    final = [i for i in range(len(leaves)) if i not in children]
    thresh = cfg.cluster_thresh
    if thresh is None:
        thresh = smallest_gain if np.isfinite(smallest_gain) else 0.0
    rep_local = _cluster_leaves([leaves[i] for i in final], thresh, cfg.var_floor)
    # pdf ids: in order of first appearance of each cluster (final leaves are in root order)
    pdf_of_final: dict[int, int] = {}
    cluster_pdf: dict[int, int] = {}
    for k, i in enumerate(final):
        r = int(rep_local[k])
        if r not in cluster_pdf:
            cluster_pdf[r] = len(cluster_pdf)
        pdf_of_final[i] = cluster_pdf[r]
    num_pdfs = len(cluster_pdf)
    pdf_counts = np.zeros(num_pdfs)
    for i in final:
        pdf_counts[pdf_of_final[i]] += leaves[i].n

    # pack into an EventMap: TE(center) -> [TE(pdf class) ->] SE ... -> CE
    b = EventMapBuilder()
    sets_index: dict[tuple[int, ...], int] = {}

    def emit_leaf(i: int) -> int:
        if i not in children:
            return b.add(CE, 3, pdf=pdf_of_final[i])
        col, y, nn, qset = children[i]
        sid = sets_index.setdefault(qset, len(sets_index))
        node = b.add(SE, col, set_id=sid)
        b.yes[node] = emit_leaf(y)
        b.no[node] = emit_leaf(nn)
        return node

    root = b.add(TE, 1)
    table = [-1] * (max(real) + 1)
    for p in real:
        if cfg.split_pdf_classes_first:
            node = b.add(TE, 3)
            b.tables[node] = [emit_leaf(roots[(p, c)]) for c in range(num_classes[p])]
            table[p] = node
        else:
            table[p] = emit_leaf(roots[(p, -1)])
    b.tables[root] = table
    tree = b.finish(sorted(sets_index, key=sets_index.get))
    tree.pdf_counts = pdf_counts
    tree.info = dict(num_leaves_split=len(final), num_pdfs=num_pdfs, initial_leaves=n_initial,
                     split_gain=total_gain, smallest_split_gain=float(smallest_gain) if np.isfinite(smallest_gain) else None,
                     cluster_thresh=float(thresh), pdfs_without_stats=int((pdf_counts == 0).sum()),
                     stats_frames=float(stats.counts.sum()), stats_events=len(stats),
                     num_phone_questions=len(questions.phone_sets))
    log.info("tree: %d initial leaves -> %d after splitting (gain %.1f, smallest %.2f) -> %d pdfs after merging "
             "(thresh %.2f); %d pdfs without data", n_initial, len(final), total_gain,
             tree.info["smallest_split_gain"] or 0.0, num_pdfs, thresh, tree.info["pdfs_without_stats"])
    return tree
