"""A Kaldi-style lang directory (phones, words, topo, L.fst): write one, load one.

Layout (Kaldi's ``utils/prepare_lang.sh`` conventions, without word-position-dependent phones)::

    phones.txt      <eps>=0, SIL, SPN, the non-silence phones, then #0, #1, ... (disambiguation)
    words.txt       <eps>=0, words (C order, incl. !SIL and <UNK>), #0, <s>, </s>
    lexicon.txt lexiconp.txt lexiconp_disambig.txt oov.txt oov.int oov_counts.txt
    topo            3-state left-to-right HMMs; 5 states for SIL/SPN (Kaldi's gen_topo.pl)
    phones/{silence,nonsilence,optional_silence,disambig,context_indep,wdisambig}.{txt,int}
    phones/wdisambig_phones.int phones/wdisambig_words.int
    L.fst           lexicon FST with optional silence (probability --sil-prob) between words
    L_disambig.fst  the same with disambiguation symbols and #0 self-loops (for decoding graphs)

Both FSTs map phones (input) to words (output) and are arc-sorted on output labels (for L o G).
"""

from __future__ import annotations

import logging
import os
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

from asr_base.io import write_json, write_text
from data_prep.lang.lexicon import SIL, SIL_WORD, SILENCE_PHONES, SPN, UNK, Lexicon, add_disambig, lexicon_entries
from data_prep.lang.lexicon_fst import make_lexicon_fst, write_fst
from data_prep.lang.topology import make_topo, parse_topo_num_pdf_classes

log = logging.getLogger(__name__)

META = "meta.json"
KALDI_ALIGN_LEXICON = "phones/align_lexicon.txt"  # in Kaldi lang dirs instead of lexicon.txt


@dataclass
class LangDir:
    path: Path
    phones: dict[str, int]
    phone_names: list[str]  # id -> name ("" for unused ids)
    words: dict[str, int]
    lexicon: dict[str, list[tuple[str, ...]]]
    silence_phones: list[str]
    nonsilence_phones: list[str]
    optional_silence: str
    disambig_phone_ids: list[int]
    oov: str
    pdf_classes: dict[int, int] = field(default_factory=dict)  # phone id -> number of pdf classes

    @classmethod
    def load(cls, path: str | os.PathLike) -> "LangDir":
        path = Path(path)
        missing = [n for n in ("phones.txt", "words.txt", "topo", "oov.txt") if not (path / n).is_file()]
        if not (path / "lexicon.txt").is_file() and not (path / KALDI_ALIGN_LEXICON).is_file():
            missing.append(f"lexicon.txt (or Kaldi's {KALDI_ALIGN_LEXICON})")
        if missing:
            raise FileNotFoundError(f"{path} is not a lang dir: {', '.join(missing)} missing")
        phones = read_symbols(path / "phones.txt")
        names = [""] * (max(phones.values()) + 1)
        for k, v in phones.items():
            names[v] = k
        return cls(
            path=path,
            phones=phones,
            phone_names=names,
            words=read_symbols(path / "words.txt"),
            lexicon=read_lang_lexicon(path),
            **cls._phone_sets(path, phones),
            oov=(path / "oov.txt").read_text(encoding="utf-8").split()[0],
            pdf_classes=parse_topo_num_pdf_classes((path / "topo").read_text(encoding="utf-8")),
        )

    @staticmethod
    def _phone_sets(path: Path, phones: dict[str, int]) -> dict:
        ph = path / "phones"
        silence = _read_list(ph / "silence.txt")
        nonsilence = _read_list(ph / "nonsilence.txt")
        optional = _read_list(ph / "optional_silence.txt")
        disambig = _read_list(ph / "disambig.txt")
        return dict(silence_phones=silence, nonsilence_phones=nonsilence,
                    optional_silence=optional[0] if optional else SIL,
                    disambig_phone_ids=[phones[p] for p in disambig])

    def num_pdf_classes(self, phone_id: int) -> int:
        try:
            return self.pdf_classes[int(phone_id)]
        except KeyError:
            raise KeyError(f"phone id {phone_id} has no HMM in {self.path / 'topo'}") from None

    @property
    def real_phone_ids(self) -> list[int]:
        """Ids of the phones that have HMMs (silence + non-silence), ascending."""
        return sorted(self.phones[p] for p in self.silence_phones + self.nonsilence_phones)

    @property
    def silence_phone_ids(self) -> list[int]:
        return [self.phones[p] for p in self.silence_phones]

    def load_l_fst(self, disambig: bool = False):
        """``kaldifst.StdVectorFst`` of L.fst (training graphs) or L_disambig.fst (decoding)."""
        from asr_base.kaldi import kaldifst

        return kaldifst.StdVectorFst.read(str(self.path / ("L_disambig.fst" if disambig else "L.fst")))


def read_lang_lexicon(path: str | os.PathLike) -> Lexicon:
    """Word -> pronunciations of a lang dir: our ``lexicon.txt`` (``WORD PH1 PH2 ...``), or in a Kaldi lang dir
    (which has no lexicon.txt) ``phones/align_lexicon.txt`` (``WORD WORD PH1_B PH2_I ...``, Kaldi's
    word-position-dependent phones as the tree and L.fst know them)."""
    path = Path(path)
    ours = path / "lexicon.txt"
    src, skip = (ours, 1) if ours.is_file() else (path / KALDI_ALIGN_LEXICON, 2)
    lexicon: Lexicon = {}
    with open(src, encoding="utf-8") as f:
        for lineno, line in enumerate(f, 1):
            fields = line.split()
            if not fields or (skip == 2 and fields[0] == "<eps>"):  # Kaldi's "<eps> <eps> SIL" entry
                continue
            if skip == 2 and (len(fields) < 2 or fields[1] != fields[0]):
                raise ValueError(f"{src}:{lineno}: expected Kaldi's 'WORD WORD PHONES...', got {line.strip()!r}")
            lexicon.setdefault(fields[0], []).append(tuple(fields[skip:]))
    return lexicon


def read_symbols(path: str | os.PathLike) -> dict[str, int]:
    table: dict[str, int] = {}
    with open(path, encoding="utf-8") as f:
        for lineno, line in enumerate(f, 1):
            fields = line.split()
            if not fields:
                continue
            if len(fields) != 2:
                raise ValueError(f"{path}:{lineno}: expected 'symbol id', got {line!r}")
            table[fields[0]] = int(fields[1])
    return table


def _read_list(path: Path) -> list[str]:
    if not path.is_file():
        return []
    return [w for line in path.read_text(encoding="utf-8").splitlines() for w in line.split()]


def _sym_text(symbols: Sequence[str]) -> str:
    return "".join(f"{s} {i}\n" for i, s in enumerate(symbols))


def load_topology(lang: "LangDir | str | os.PathLike"):
    """``kaldi_hmm_gmm.HmmTopology`` read from ``<lang>/topo``."""
    from asr_base.kaldi import kaldi_hmm_gmm

    path = lang.path if isinstance(lang, LangDir) else Path(lang)
    topo = kaldi_hmm_gmm.HmmTopology()
    topo.read((Path(path) / "topo").read_text(encoding="utf-8"))  # read() takes the text itself
    return topo


def write_lang_dir(lexicon: Lexicon, out_dir: str | os.PathLike, nonsilence_phones: Sequence[str] | None = None,
                   sil_prob: float = 0.5, oov_counts: dict[str, int] | None = None,
                   num_nonsil_states: int = 3, num_sil_states: int = 5, meta: dict | None = None,
                   extra_files: dict[str, str] | None = None) -> LangDir:
    """Write a complete lang dir for ``lexicon`` (word -> pronunciations) into ``out_dir``.

    The directory is built under a temporary name and renamed into place, so it appears complete or
    not at all. ``nonsilence_phones`` defaults to the phones used in the lexicon; ``!SIL`` and
    ``<UNK>`` entries are added when missing.
    """
    out_dir = Path(out_dir)
    lexicon = {w: list(p) for w, p in lexicon.items()}
    lexicon.setdefault(SIL_WORD, [(SIL,)])
    lexicon.setdefault(UNK, [(SPN,)])
    used = {p for prons in lexicon.values() for pron in prons for p in pron}
    if nonsilence_phones is None:
        nonsilence_phones = sorted(used - set(SILENCE_PHONES))
    nonsilence_phones = list(nonsilence_phones)
    unknown = used - set(nonsilence_phones) - set(SILENCE_PHONES)
    if unknown:
        raise ValueError(f"lexicon uses phones outside the phone set: {sorted(unknown)[:10]}")
    for w in lexicon:
        if w in ("<eps>", "<s>", "</s>", "#0") or w.startswith("#") or not w or any(c.isspace() for c in w):
            raise ValueError(f"reserved or invalid word {w!r} in the lexicon")

    entries = lexicon_entries(lexicon)
    entries_disambig, max_disambig = add_disambig(entries)
    num_disambig = max_disambig + 1  # +1: the symbol after optional silence in L_disambig (Kaldi's --sil-disambig)
    disambig = [f"#{i}" for i in range(num_disambig + 1)]  # #0 (LM back-off) .. #num_disambig
    phone_list = ["<eps>", *SILENCE_PHONES, *nonsilence_phones, *disambig]
    phones = {p: i for i, p in enumerate(phone_list)}
    word_list = ["<eps>", *sorted(lexicon, key=lambda s: s.encode("utf-8")), "#0", "<s>", "</s>"]
    words = {w: i for i, w in enumerate(word_list)}

    tmp = out_dir.with_name(f".{out_dir.name}.tmp")
    if tmp.exists():
        shutil.rmtree(tmp)
    (tmp / "phones").mkdir(parents=True)

    write_text(tmp / "phones.txt", _sym_text(phone_list))
    write_text(tmp / "words.txt", _sym_text(word_list))
    write_text(tmp / "lexicon.txt", "".join(f"{w} {' '.join(p)}\n" for w, p in entries))
    write_text(tmp / "lexiconp.txt", "".join(f"{w} 1.0 {' '.join(p)}\n" for w, p in entries))
    write_text(tmp / "lexiconp_disambig.txt", "".join(f"{w} 1.0 {' '.join(p)}\n" for w, p in entries_disambig))
    write_text(tmp / "oov.txt", f"{UNK}\n")
    write_text(tmp / "oov.int", f"{words[UNK]}\n")
    oov_counts = oov_counts or {}
    write_text(tmp / "oov_counts.txt",
               "".join(f"{w} {n}\n" for w, n in sorted(oov_counts.items(), key=lambda x: (-x[1], x[0]))))
    sil_ids = [phones[p] for p in SILENCE_PHONES]
    nonsil_ids = [phones[p] for p in nonsilence_phones]
    write_text(tmp / "topo", make_topo(nonsil_ids, sil_ids, num_nonsil_states, num_sil_states))

    def put(name: str, symbols: Sequence[str]) -> None:
        write_text(tmp / "phones" / f"{name}.txt", "".join(f"{s}\n" for s in symbols))
        write_text(tmp / "phones" / f"{name}.int", "".join(f"{phones[s]}\n" for s in symbols))

    put("silence", SILENCE_PHONES)
    put("nonsilence", nonsilence_phones)
    put("optional_silence", [SIL])
    put("disambig", disambig)
    put("context_indep", SILENCE_PHONES)
    put("wdisambig", ["#0"])
    write_text(tmp / "phones" / "wdisambig_phones.int", f"{phones['#0']}\n")
    write_text(tmp / "phones" / "wdisambig_words.int", f"{words['#0']}\n")

    from asr_base.kaldi import kaldifst

    L = make_lexicon_fst(entries, phones, words, sil_prob)
    kaldifst.arcsort(L, sort_type="olabel")
    write_fst(L, tmp / "L.fst")
    Ld = make_lexicon_fst(entries_disambig, phones, words, sil_prob,
                          sil_disambig=f"#{num_disambig}" if sil_prob > 0 else None)
    kaldifst.add_self_loops(Ld, [phones["#0"]], [words["#0"]])
    kaldifst.arcsort(Ld, sort_type="olabel")
    write_fst(Ld, tmp / "L_disambig.fst")
    for name, content in (extra_files or {}).items():
        write_text(tmp / name, content)
    write_json(tmp / META, dict(meta or {}, num_words=len(lexicon), num_prons=len(entries),
                                num_nonsilence_phones=len(nonsilence_phones), num_disambig=len(disambig),
                                num_oov_types=len(oov_counts), num_oov_tokens=int(sum(oov_counts.values())),
                                sil_prob=sil_prob))

    if out_dir.exists():
        old = out_dir.with_name(f".{out_dir.name}.old")
        if old.exists():
            shutil.rmtree(old)
        os.replace(out_dir, old)
        os.replace(tmp, out_dir)
        shutil.rmtree(old)
    else:
        os.replace(tmp, out_dir)
    log.info("%s: %d words, %d pronunciations, %d phones (+%d disambiguation symbols)", out_dir, len(lexicon),
             len(entries), len(SILENCE_PHONES) + len(nonsilence_phones), len(disambig))
    return LangDir.load(out_dir)
