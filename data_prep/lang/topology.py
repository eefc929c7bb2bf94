"""HMM topologies as Kaldi text (``<lang>/topo``): 3-state left-to-right phones, 5-state silence."""

from __future__ import annotations

import re
from typing import Sequence


def make_topo(nonsil_ids: Sequence[int], sil_ids: Sequence[int], num_nonsil_states: int = 3,
              num_sil_states: int = 5) -> str:
    """Kaldi text topology, like ``utils/gen_topo.pl``.

    Non-silence phones: ``num_nonsil_states`` left-to-right states (self-loop 0.75, forward 0.25).
    Silence phones: ``num_sil_states`` states where the first and inner states are ergodic among the
    inner states (Kaldi's standard silence model). Transition probabilities are the initial values;
    training re-estimates them.
    """
    lines = ["<Topology>"]
    if nonsil_ids:
        lines += ["<TopologyEntry>", "<ForPhones>", " ".join(map(str, nonsil_ids)), "</ForPhones>"]
        for s in range(num_nonsil_states):
            lines.append(f"<State> {s} <PdfClass> {s} <Transition> {s} 0.75 <Transition> {s + 1} 0.25 </State>")
        lines += [f"<State> {num_nonsil_states} </State>", "</TopologyEntry>"]
    if sil_ids:
        n = num_sil_states
        lines += ["<TopologyEntry>", "<ForPhones>", " ".join(map(str, sil_ids)), "</ForPhones>"]
        if n == 1:
            lines.append("<State> 0 <PdfClass> 0 <Transition> 0 0.75 <Transition> 1 0.25 </State>")
        else:
            p = 1.0 / (n - 1)
            lines.append("<State> 0 <PdfClass> 0 " + " ".join(f"<Transition> {t} {p:g}" for t in range(n - 1))
                         + " </State>")
            for s in range(1, n - 1):
                lines.append(f"<State> {s} <PdfClass> {s} "
                             + " ".join(f"<Transition> {t} {p:g}" for t in range(1, n)) + " </State>")
            lines.append(f"<State> {n - 1} <PdfClass> {n - 1} <Transition> {n - 1} 0.75 "
                         f"<Transition> {n} 0.25 </State>")
        lines += [f"<State> {n} </State>", "</TopologyEntry>"]
    lines.append("</Topology>")
    return "\n".join(lines) + "\n"


def parse_topo_num_pdf_classes(text: str) -> dict[int, int]:
    """phone id -> number of pdf classes, from a text topology (no Kaldi import needed)."""
    out: dict[int, int] = {}
    for entry in re.findall(r"<TopologyEntry>(.*?)</TopologyEntry>", text, flags=re.S):
        phones = re.search(r"<ForPhones>(.*?)</ForPhones>", entry, flags=re.S)
        if phones is None:
            raise ValueError("topology entry without <ForPhones>")
        classes = {int(c) for c in re.findall(r"<PdfClass>\s*(-?\d+)", entry)}
        classes |= {int(c) for c in re.findall(r"<(?:Forward|SelfLoop)PdfClass>\s*(-?\d+)", entry)}
        n = max(classes) + 1 if classes else 0
        for p in phones.group(1).split():
            out[int(p)] = n
    return out
