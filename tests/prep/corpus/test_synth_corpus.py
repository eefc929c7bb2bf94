"""Tests for the offline synthetic corpus: text normalisation, voices/perturbation, planning, and the
tiny preset end to end (layout, audio format, disjointness, determinism, resume, failure listing)."""

from __future__ import annotations

import dataclasses
import re
import shutil
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from data_prep.corpus.synth import text as T
from data_prep.corpus.synth import voices as V
from data_prep.corpus.synth.synth_corpus import (
    SPLITS, ConfigMismatch, SynthConfig, harvest_pool, plan_corpus, synth_chapter,
    synthesize_corpus,
)

VOCAB = frozenset("the a i o cat sat on mat don't it's well known dog dogs team's big red house is very old "
                  "and then we went home to see our friends at night he said no".split())

needs_sox_flite = pytest.mark.skipif(bool(V.missing_tools(["flite:slt"])), reason="sox/flite not installed")


# ------------------------------------------------------------------------------------------- text


def norm(s, **kw):
    return T.normalize_sentence(s, VOCAB, "t", **kw)


def test_normalize_accepts_and_uppercases():
    sent, reason = norm("The big red house is very old, and then we went home.")
    assert reason == ""
    assert sent.transcript == "THE BIG RED HOUSE IS VERY OLD AND THEN WE WENT HOME"
    assert sent.tts == "The big red house is very old, and then we went home."


def test_normalize_apostrophes_quotes_hyphens_and_terminal_punctuation():
    sent, _ = norm('"Don\'t see the dog," he said -- it\'s a well-known house!')
    assert sent.words == ("DON'T", "SEE", "THE", "DOG", "HE", "SAID", "IT'S", "A", "WELL", "KNOWN", "HOUSE")
    assert sent.tts.endswith("house!") and "well known" in sent.tts and '"' not in sent.tts
    sent, _ = norm("The team's dogs' house is very old.")
    assert sent.words[1] == "TEAM'S" and sent.words[2] == "DOGS"


@pytest.mark.parametrize("raw,reason", [
    ("The cat sat on the mat 3 times and then went home.", "symbol"),
    ("The cat sat on the mat & then we went home.", "symbol"),
    ("Then Mr. Dog sat on the big red mat.", "abbreviation"),
    ("Then J. R. Dog sat on the big red mat.", "abbreviation"),
    ("Then the BIG cat sat on the red mat.", "all-caps token"),
    ("The cat sat on the mat and then x went home.", "single letter"),
    ("The cat sat on the zebra mat and then home.", "oov"),
    ("The cat sat.", "length"),
    ("Q: the cat sat on the mat and then went home?", "speaker label"),
])
def test_normalize_rejects(raw, reason):
    sent, why = norm(raw)
    assert sent is None and why == reason


def test_normalize_word_limits():
    s = "the dog sat on the mat " * 6  # 36 words
    assert norm(s)[1] == "length"
    assert norm(s, max_words=40)[0] is not None


def test_split_sentences():
    parts = T.split_sentences('The cat sat.  "Then the dog sat!" He said no? and we went')
    assert parts == ["The cat sat.", '"Then the dog sat!"', "He said no? and we went"]


def test_fortune_and_wordnet_parsing(tmp_path):
    fdir, wdir = tmp_path / "fortunes", tmp_path / "wordnet"
    fdir.mkdir()
    wdir.mkdir()
    (fdir / "cats").write_text("The cat sat on the mat and then we went home.\n"
                               "  -- A. Famous Person\n%\nThe big red house is\nvery old. Then we went home.\n%\n")
    (fdir / "cats.dat").write_bytes(b"\x00binary index")
    (wdir / "data.noun").write_text(
        "  1 licence header line\n"
        '00001 03 n 01 cat 0 000 | a small animal; "the cat sat on the mat at night"; "we went home"\n')
    paras = list(T.iter_fortune_paragraphs(fdir))
    assert [p for _, p in paras] == ["The cat sat on the mat and then we went home.",
                                    "The big red house is very old. Then we went home."]
    assert [e for _, e in T.iter_wordnet_examples(wdir)] == ["the cat sat on the mat at night", "we went home"]
    sents, rejects = T.harvest_sentences(VOCAB, raw=T.iter_raw_sentences(fdir, wdir))
    assert sorted(s.transcript for s in sents) == [
        "THE BIG RED HOUSE IS VERY OLD", "THE CAT SAT ON THE MAT AND THEN WE WENT HOME", "THE CAT SAT ON THE MAT AT NIGHT"]
    assert rejects["length"] == 2  # "Then we went home." and "we went home"


def test_harvest_deduplicates():
    raw = [("a", "The cat sat on the big red mat."), ("b", "the cat sat on the big red mat")]
    sents, rejects = T.harvest_sentences(VOCAB, raw=raw)
    assert len(sents) == 1 and rejects == {"duplicate": 1}


def test_real_pool_is_large_and_in_cmudict():
    sents, _ = harvest_pool(6, 30)
    assert len(sents) > 20000  # Debian fortunes + wordnet give tens of thousands
    vocab = T.load_cmudict_words()
    rng = np.random.default_rng(0)
    for i in rng.choice(len(sents), 500, replace=False):
        s = sents[i]
        assert 6 <= len(s.words) <= 30
        assert all(w.lower() in vocab and re.fullmatch(r"[A-Z']+", w) for w in s.words)
        assert not re.search(r"[0-9&$%/@#]", s.tts)


# ------------------------------------------------------------------------------------------- audio


def test_parse_engine_segments():
    assert V.parse_flite_psdur("pau:0.184 dh:0.236 ax:0.265 \n") == [
        (0.0, 0.184, "pau"), (0.184, 0.236, "dh"), (0.236, 0.265, "ax")]
    # one line per sentence, times restart: shifted by the previous sentence's end
    segs = V.parse_flite_psdur("pau:0.2 dh:0.5 pau:1.0 \npau:0.25 k:0.5 \n")
    assert [round(e, 6) for _, e, _ in segs] == [0.2, 0.5, 1.0, 1.25, 1.5]
    assert V.parse_festival_segs("#\n0.2200 100 pau\n0.2875 100 d\n") == [(0.0, 0.22, "pau"), (0.22, 0.2875, "d")]


def test_colored_noise_unit_rms_and_spectral_tilt():
    rng = np.random.default_rng(0)
    n = 1 << 15
    for color in ("white", "pink", "brown"):
        x = V.colored_noise(n, color, rng)
        assert abs(np.sqrt(np.mean(x.astype(np.float64) ** 2)) - 1) < 1e-4
    spec = lambda c: np.abs(np.fft.rfft(V.colored_noise(n, c, np.random.default_rng(1)))) ** 2  # noqa: E731
    low, high = slice(10, 200), slice(8000, 16000)
    ratio = {c: spec(c)[low].mean() / spec(c)[high].mean() for c in ("white", "pink", "brown")}
    assert ratio["white"] < 3 < ratio["pink"] < ratio["brown"]


def test_render_mixes_noise_at_exact_snr():
    rate = V.SAMPLE_RATE
    t = np.arange(rate) / rate
    speech = (0.3 * np.sin(2 * np.pi * 220 * t) * (t > 0.5)).astype(np.float32)  # half silence
    p = V.Perturbation(noise_color="pink", peak=0.6)
    out = V.render(speech, p, 25.0, 0.2, 0.1, np.random.default_rng(7)).astype(np.float64) / 32767
    lead = int(0.2 * rate)
    assert len(out) == len(speech) + lead + int(0.1 * rate)
    assert abs(np.max(np.abs(out)) - 0.6) < 1e-3
    padded = np.concatenate([np.zeros(lead), speech, np.zeros(len(out) - lead - len(speech))])
    noise = V.colored_noise(len(out), "pink", np.random.default_rng(7))
    (a, b), *_ = np.linalg.lstsq(np.stack([padded, noise], 1), out, rcond=None)
    snr = 20 * np.log10(a * V.active_rms(speech) / b)
    assert abs(snr - 25.0) < 0.05


def test_render_rejects_silence():
    with pytest.raises(ValueError):
        V.render(np.zeros(16000, np.float32), V.Perturbation(), 30.0, 0.1, 0.1, np.random.default_rng(0))


@needs_sox_flite
def test_sox_perturb_scales_duration(tmp_path):
    wav = tmp_path / "tone.wav"
    t = np.arange(22050 * 2) / 22050
    sf.write(str(wav), (0.3 * np.sin(2 * np.pi * 200 * t)).astype(np.float32), 22050)
    p = V.Perturbation(speed=1.08, tempo=0.95, pitch_cents=100, reverberance=20)
    y = V.sox_perturb(wav, p)
    assert y.dtype == np.float32 and y.ndim == 1
    assert abs(len(y) / V.SAMPLE_RATE - 2.0 * p.time_scale) < 0.05
    assert np.array_equal(y, V.sox_perturb(wav, p))  # bit-exact: no dither


@needs_sox_flite
def test_flite_synthesis_with_timings(tmp_path):
    text = "The cat sat on the mat. We went home to see our friends at night."
    out = V.synthesize(V.get_voice("flite:slt"), [("u1", text)], tmp_path)["u1"]
    assert out.error == "" and out.wav.is_file()
    phones = [ph for _, _, ph in out.segments]
    assert phones[0] == "pau" and "k" in phones and "ae" in phones
    ends = np.array([e for _, e, _ in out.segments])
    assert phones.count("pau") >= 3  # sentence-initial and -final pauses of both sentences
    assert np.all(np.diff(ends) >= 0) and abs(ends[-1] - sf.info(str(out.wav)).duration) < 0.05


@needs_sox_flite
def test_sentences_joined_with_exact_timings(tmp_path):
    voice = V.get_voice("flite:kal16")  # a diphone voice: reports a final pause longer than its audio
    sents = ("The cat sat on the mat.", "We went home to see our friends.")
    out = V.synthesize_utterances(voice, [("u", sents)], tmp_path / "joined")["u"]
    alone = [V.synthesize(voice, [(f"p{i}", t)], tmp_path / "alone")[f"p{i}"] for i, t in enumerate(sents)]
    d = [sf.info(str(a.wav)).frames for a in alone]
    joined, _ = sf.read(str(out.wav), dtype="int16")
    assert len(joined) == sum(d)
    first, _ = sf.read(str(alone[0].wav), dtype="int16")
    assert np.array_equal(joined[: d[0]], first)
    starts = np.array([s for s, _, _ in out.segments])
    ends = np.array([e for _, e, _ in out.segments])
    assert np.all(ends >= starts) and np.allclose(starts[1:], ends[:-1]) and ends[-1] <= sum(d) / 16000 + 1e-9
    second = [s for s, _, _ in out.segments if s >= d[0] / 16000 - 1e-9]
    assert abs(second[0] - d[0] / 16000) < 1e-6  # the second sentence starts where the first one's audio ends
    bad = V.synthesize_utterances(V.Voice("flite:none", "flite", "no_such_voice_file", "M"), [("x", sents)],
                                  tmp_path / "bad")["x"]
    assert bad.wav is None and "not installed" in bad.error  # flite would silently use its default voice
    assert V.unavailable_voices(["flite:slt", "festival:kal_diphone"]) == []


@pytest.mark.e2e
@pytest.mark.skipif(bool(V.missing_tools(["festival:kal_diphone"])), reason="festival not installed")
def test_festival_batch_one_process(tmp_path):
    items = [("a", "The cat sat on the mat."), ("b", "We went home to see our friends.")]
    outs = V.synthesize(V.get_voice("festival:kal_diphone"), items, tmp_path)
    assert len(list(tmp_path.glob("festival_*.scm"))) == 1  # one batch script for both
    for key, _ in items:
        assert outs[key].error == "" and sf.info(str(outs[key].wav)).samplerate == 16000
        assert outs[key].segments and outs[key].segments[0][2] == "pau"


@pytest.mark.e2e
@pytest.mark.skipif(bool(V.missing_tools(["espeak:en-us+f2"])), reason="espeak-ng not installed")
def test_espeak_synthesis(tmp_path):
    out = V.synthesize(V.get_voice("espeak:en-us+f2"), [("e", "The cat sat on the mat.")], tmp_path)["e"]
    assert out.error == "" and out.segments is None and sf.info(str(out.wav)).duration > 0.5


def test_unknown_voice_is_a_clear_error():
    with pytest.raises(ValueError, match="unknown voice"):
        V.get_voice("flite:nobody")
    with pytest.raises(ValueError):
        SynthConfig(voices=("flite:slt",), test_only_voices=("flite:slt",)).validate()


# ---------------------------------------------------------------------------------------- planning


def test_plan_default_config_speakers_and_sentences_disjoint(tmp_path):
    cfg = SynthConfig()
    sents, _ = harvest_pool(cfg.min_words, cfg.max_words)
    plan = plan_corpus(cfg, tmp_path, list(sents))
    by_split = {s: [x for x in plan.speakers if x.split == s] for s in SPLITS}
    assert [len(by_split[s]) for s in SPLITS] == [40, 8, 8]
    assert len({x.speaker_id for x in plan.speakers}) == 56
    combos = {(x.voice, x.perturbation) for x in plan.speakers}
    assert len(combos) == 56  # every speaker its own voice + perturbation
    train_voices = {x.voice for x in by_split["train"] + by_split["dev"]}
    assert set(cfg.test_only_voices) & {x.voice for x in by_split["test"]}
    assert not set(cfg.test_only_voices) & train_voices
    espeak = sum(x.voice.startswith("espeak:") for x in by_split["train"])
    assert 0 < espeak < 0.3 * len(by_split["train"])  # a minority
    for x in plan.speakers:
        assert 0.92 <= x.perturbation.speed <= 1.08 and 20 <= x.perturbation.snr_db <= 40
    # sentence pools are disjoint, and every utterance is made of its split's sentences
    pools = {s: {x.transcript for x in plan.pools[s]} for s in SPLITS}
    assert not pools["train"] & pools["dev"] and not pools["train"] & pools["test"] and not pools["dev"] & pools["test"]
    est = {s: 0.0 for s in SPLITS}
    for task in plan.chapters:
        rate = cfg.words_per_second * task.speaker.perturbation.speed * task.speaker.perturbation.tempo
        for u in task.utts:
            assert 2 <= len(u.tts) <= 3  # 2-3 sentences joined
            assert " ".join(u.tts).count(".") + " ".join(u.tts).count("?") + " ".join(u.tts).count("!") == len(u.tts)
            est[task.split] += len(u.words) / rate + u.lead_pad + u.tail_pad
            assert re.fullmatch(rf"{task.speaker.speaker_id}-{task.chapter}-\d{{4}}", u.utt_id)
        assert len(task.utts) <= cfg.max_chapter_utts
    used = {s: {x.transcript for x in plan.used[s]} for s in SPLITS}
    assert all(used[s] <= pools[s] for s in SPLITS)
    assert 0.9 * 7200 < est["train"] < 1.15 * 7200 and 0.9 * 900 < est["dev"] < 1.15 * 900


def test_plan_is_deterministic_and_seed_dependent(tmp_path):
    cfg = SynthConfig.tiny(seed=3)
    sents = list(harvest_pool(cfg.min_words, cfg.max_words)[0])
    a, b = plan_corpus(cfg, tmp_path, sents), plan_corpus(cfg, tmp_path, sents)
    assert a.chapters == b.chapters and a.speakers == b.speakers
    c = plan_corpus(dataclasses.replace(cfg, seed=4), tmp_path, sents)
    assert [u.words for t in a.chapters for u in t.utts] != [u.words for t in c.chapters for u in t.utts]


# -------------------------------------------------------------------------------------- end to end


def _read_corpus(root: Path) -> dict:
    """{split: {utt: transcript}} from the trans.txt files, checking the LibriSpeech layout on the way."""
    out = {}
    for split in SPLITS:
        out[split] = {}
        for trans in sorted((root / "LibriSpeech" / split).glob("*/*/*.trans.txt")):
            spk, chap = trans.parent.parent.name, trans.parent.name
            assert re.fullmatch(r"\d{4}", spk) and re.fullmatch(rf"{spk}\d", chap)
            assert trans.name == f"{spk}-{chap}.trans.txt"
            for line in trans.read_text().splitlines():
                utt, text = line.split(" ", 1)
                assert re.fullmatch(rf"{spk}-{chap}-\d{{4}}", utt)
                assert (trans.parent / f"{utt}.flac").is_file()
                out[split][utt] = text
            flacs = {p.stem for p in trans.parent.glob("*.flac")}
            assert flacs == {line.split()[0] for line in trans.read_text().splitlines()}
    return out


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    if V.missing_tools(["flite:slt"]):
        pytest.skip("sox/flite not installed")
    root = tmp_path_factory.mktemp("tiny")
    manifest = synthesize_corpus(SynthConfig.tiny(), root, jobs=2, progress=False)
    return root, manifest


@pytest.mark.e2e
def test_tiny_layout_audio_and_transcripts(tiny):
    root, manifest = tiny
    corpus = _read_corpus(root)
    assert all(corpus[s] for s in SPLITS)
    vocab = T.load_cmudict_words()
    for split in SPLITS:
        assert manifest["splits"][split]["utterances"] == len(corpus[split])
        for utt, text in corpus[split].items():
            assert text == text.upper() and all(w.lower() in vocab for w in text.split())
            spk, chap, _ = utt.split("-")
            info = sf.info(str(root / "LibriSpeech" / split / spk / chap / f"{utt}.flac"))
            assert (info.samplerate, info.channels, info.format, info.subtype) == (16000, 1, "FLAC", "PCM_16")
            assert 1.0 < info.duration < 20
    assert manifest["failed_utterances"] == 0
    assert (root / "synth_failures.tsv").read_text().splitlines() == ["split\tutt_id\treason"]


@pytest.mark.e2e
def test_tiny_speakers_txt_and_disjointness(tiny):
    root, _ = tiny
    corpus = _read_corpus(root)
    rows = [line for line in (root / "LibriSpeech" / "SPEAKERS.TXT").read_text().splitlines()
            if not line.startswith(";")]
    table = {}
    for row in rows:
        sid, sex, subset, minutes, name = [f.strip() for f in row.split("|")]
        assert sex in ("M", "F") and float(minutes) > 0 and name
        table[sid] = subset
    spk = {s: {u.split("-")[0] for u in corpus[s]} for s in SPLITS}
    assert not spk["train"] & spk["dev"] and not spk["train"] & spk["test"]
    assert all(table[x] == s for s in SPLITS for x in spk[s])
    import json

    speakers = json.loads((root / "speakers.json").read_text())
    voice = {str(x["speaker_id"]): x["voice"] for x in speakers}
    assert {voice[x] for x in spk["test"]} & set(SynthConfig.tiny().test_only_voices)
    assert not {voice[x] for x in spk["train"] | spk["dev"]} & set(SynthConfig.tiny().test_only_voices)
    # no dev/test sentence in train utterances or in the LM text
    lm = set((root / "lm_text.txt").read_text().splitlines())
    assert lm and all(line == line.upper() for line in lm)
    cfg = SynthConfig.tiny()
    plan = plan_corpus(cfg, root, list(harvest_pool(cfg.min_words, cfg.max_words)[0]))
    heldout = {x.transcript for s in ("dev", "test") for x in plan.pools[s]}
    assert not lm & heldout
    train_text = " | ".join(corpus["train"].values())
    for sent in plan.used["dev"] + plan.used["test"]:
        assert sent.transcript not in train_text
        assert any(sent.transcript in t for s in ("dev", "test") for t in corpus[s].values())


@pytest.mark.e2e
def test_tiny_phone_timings_match_audio(tiny):
    root, _ = tiny
    files = sorted((root / "phone_timings").glob("*/*.txt"))
    assert files
    for f in files:
        rows = [line.split() for line in f.read_text().splitlines()]
        start = np.array([float(r[0]) for r in rows])
        end = np.array([float(r[1]) for r in rows])
        assert np.all(end > start - 1e-9) and np.allclose(start[1:], end[:-1])
        utt = f.stem
        spk, chap, _ = utt.split("-")
        dur = sf.info(str(root / "LibriSpeech" / f.parent.name / spk / chap / f"{utt}.flac")).duration
        tail = dur - end[-1]
        assert start[0] == 0 or 0.099 <= start[0] <= 0.401  # the leading pad (0.1-0.4 s)
        assert 0.04 <= tail <= 0.5  # trailing pad (0.1-0.4 s) +- sox tempo rounding


@pytest.mark.e2e
def test_tiny_is_deterministic_and_resumable(tiny, tmp_path):
    root, manifest = tiny
    other = tmp_path / "again"
    synthesize_corpus(SynthConfig.tiny(), other, jobs=1, progress=False)  # different job count
    a, b = _read_corpus(root), _read_corpus(other)
    assert a == b
    for flac in (root / "LibriSpeech").glob("*/*/*/*.flac"):
        assert flac.read_bytes() == (other / flac.relative_to(root)).read_bytes()
    assert (root / "lm_text.txt").read_bytes() == (other / "lm_text.txt").read_bytes()

    # complete + same config: skipped, nothing rewritten
    mtimes = {p: p.stat().st_mtime_ns for p in other.rglob("*") if p.is_file()}
    synthesize_corpus(SynthConfig.tiny(), other, jobs=1, progress=False)
    assert mtimes == {p: p.stat().st_mtime_ns for p in other.rglob("*") if p.is_file()}

    # a lost chapter is redone (and only that one)
    chap_dir = next((other / "LibriSpeech" / "train").glob("*/*"))
    shutil.rmtree(chap_dir)
    keep = next((other / "LibriSpeech" / "dev").glob("*/*/*.flac"))
    keep_mtime = keep.stat().st_mtime_ns
    synthesize_corpus(SynthConfig.tiny(), other, jobs=1, progress=False)
    assert _read_corpus(other) == a and keep.stat().st_mtime_ns == keep_mtime

    # a different config is refused, --force regenerates
    with pytest.raises(ConfigMismatch):
        synthesize_corpus(SynthConfig.tiny(seed=1), other, jobs=1, progress=False)
    synthesize_corpus(SynthConfig.tiny(seed=1), other, jobs=1, force=True, progress=False)
    assert _read_corpus(other)["train"] != a["train"]


@pytest.mark.e2e
@needs_sox_flite
def test_failed_utterance_is_listed_not_fatal(tmp_path):
    cfg = SynthConfig.tiny()
    plan = plan_corpus(cfg, tmp_path, list(harvest_pool(cfg.min_words, cfg.max_words)[0]))
    task = plan.chapters[0]
    good = task.utts[0]
    # transcript of 80 words but only a short text to speak: the engine's duration is implausible
    bad = dataclasses.replace(good, utt_id=good.utt_id[:-4] + "0099", words=("THE",) * 80)
    res = synth_chapter(dataclasses.replace(task, utts=(good, bad)))
    assert [u for u, _, _ in res.ok] == [good.utt_id]
    assert [u for u, _ in res.failed] == [bad.utt_id] and "implausible" in res.failed[0][1]
    assert not (Path(task.chapter_dir) / f"{bad.utt_id}.flac").exists()


def test_cli_help_and_list_voices(capsys):
    from data_prep.cli import main

    with pytest.raises(SystemExit) as e:
        main(["synth-corpus", "--help"])
    assert e.value.code == 0
    assert "--tiny" in capsys.readouterr().out
    assert main(["synth-corpus", "--list-voices"]) == 0
    assert "festival:ked_diphone" in capsys.readouterr().out


def test_cli_options_override_the_preset():
    import argparse

    from data_prep.corpus.synth.synth_corpus import add_arguments, config_from_args

    parser = argparse.ArgumentParser()
    add_arguments(parser)
    cfg = config_from_args(parser.parse_args(["--tiny", "--seed", "5", "--num-train-speakers", "3"]))
    assert cfg == dataclasses.replace(SynthConfig.tiny(), seed=5, num_train_speakers=3)
    cfg = config_from_args(parser.parse_args(["--voices", "flite:slt,flite:rms", "--no-phone-timings"]))
    assert cfg.voices == ("flite:slt", "flite:rms") and not cfg.phone_timings and cfg.train_hours == 2.0
