"""synth.voices: TTS engines (flite, festival, espeak-ng), sox perturbation, noise at an exact SNR."""

from __future__ import annotations

import numpy as np
import pytest
import soundfile as sf

from data_prep.corpus.synth import voices as V

needs_sox_flite = pytest.mark.skipif(bool(V.missing_tools(["flite:slt"])), reason="sox/flite not installed")


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


def test_perturbation_is_a_resampling_after_an_engine_stretch():
    p = V.Perturbation(speed=1.05, tempo=0.94, pitch_cents=-120)
    pitch = 2 ** (-120 / 1200)
    assert p.resample_factor == pytest.approx(1.05 * pitch) and p.engine_stretch == pytest.approx(pitch / 0.94)
    # the duration of sox "speed 1.05 tempo 0.94 pitch -120", and the spectrum scaled by speed * pitch
    assert p.engine_stretch * p.time_scale == pytest.approx(1 / (1.05 * 0.94), rel=1e-5)
    eff = p.sox_effects()
    assert eff[:4] == ["remix", "-", "speed", f"{p.resample_factor:.6f}"]
    assert "tempo" not in eff and "pitch" not in eff  # WSOLA would move each part of the audio its own way


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


def _last_end(out: V.TTSOutput) -> float:
    assert out.error == ""
    end = out.segments[-1][1]
    assert abs(end - sf.info(str(out.wav)).duration) < 0.06  # the timings follow the stretched audio
    return end


@pytest.mark.e2e
@pytest.mark.parametrize("key", ["flite:slt", "festival:kal_diphone", "festival:cmu_us_slt_arctic_hts"])
def test_engine_stretch_scales_audio_and_timings(tmp_path, key):
    if V.unavailable_voices([key]):
        pytest.skip(f"{key} not installed")
    text = [("s", "The quick brown fox jumps over the lazy dog.")]
    plain = _last_end(V.synthesize(V.get_voice(key), text, tmp_path / "plain")["s"])
    slow = _last_end(V.synthesize(V.get_voice(key), text, tmp_path / "slow", stretch=1.25)["s"])
    assert slow / plain == pytest.approx(1.25, rel=0.06)


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
