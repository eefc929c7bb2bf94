"""TTS voices from Debian main and the per-speaker perturbation that turns a voice into a "speaker".

Engines (all offline): ``flite`` (one short process per sentence, ~0.05 s), ``festival`` (ONE batch
process for a whole list of utterances: loading a voice costs more than synthesising a sentence) and
``espeak-ng`` (robotic formant voices, used for a minority of speakers).

A speaker = base voice + :class:`Perturbation`: a speed (moves pitch and formants together, a VTLP-like
change of vocal tract), a tempo and a pitch shift, optional light ``reverb``, then additive coloured noise at a
fixed SNR mixed in numpy, and a level. The chain is timing-exact, so the engines' phone times stay true: the
durations change inside the engine (its timings include the stretch) and sox only resamples (``speed``), which
scales time exactly. sox ``tempo -s`` and ``pitch`` (WSOLA) would shift each part of the audio by its own few
milliseconds, which no phone time can follow (measured: 6 points of boundary agreement within 20 ms lost). A
pitch shift is a resampling plus the inverse tempo change, so speed ``s``, tempo ``t`` and pitch ``p`` (as a
factor) are sox ``speed s * p`` after an engine stretch of ``p / t``: the same spectrum and the same duration
(engine / (s * t)) as sox ``speed s tempo t pitch p``. Phone times are mapped into the output time axis
(``/ (s * p)`` plus the leading pad).
"""

from __future__ import annotations

import logging
import re
import shutil
import subprocess
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np
import soundfile as sf

logger = logging.getLogger(__name__)

SAMPLE_RATE = 16000
ESPEAK_WPM = 175  # espeak-ng's default speaking rate (words per minute), stretched per speaker


@dataclass(frozen=True)
class Voice:
    key: str  # "engine:name", e.g. "flite:slt"
    engine: str  # "flite" | "festival" | "espeak"
    name: str  # engine-specific voice name
    sex: str  # "M" | "F"

    @property
    def has_timings(self) -> bool:
        return self.engine in ("flite", "festival")


def _voices() -> dict[str, Voice]:
    out = [
        Voice("flite:rms", "flite", "rms", "M"),
        Voice("flite:awb", "flite", "awb", "M"),
        Voice("flite:slt", "flite", "slt", "F"),
        Voice("flite:kal16", "flite", "kal16", "M"),
        Voice("festival:kal_diphone", "festival", "kal_diphone", "M"),
        Voice("festival:ked_diphone", "festival", "ked_diphone", "M"),
        Voice("festival:cmu_us_slt_arctic_hts", "festival", "cmu_us_slt_arctic_hts", "F"),
    ]
    out += [Voice(f"espeak:en-us+m{i}", "espeak", f"en-us+m{i}", "M") for i in range(1, 8)]
    out += [Voice(f"espeak:en-us+f{i}", "espeak", f"en-us+f{i}", "F") for i in range(1, 6)]
    return {v.key: v for v in out}


VOICES: dict[str, Voice] = _voices()
NATURAL_VOICES = tuple(k for k, v in VOICES.items() if v.engine != "espeak")
ESPEAK_VOICES = tuple(k for k, v in VOICES.items() if v.engine == "espeak")
_BINARIES = {"flite": "flite", "festival": "festival", "espeak": "espeak-ng"}


def get_voice(key: str) -> Voice:
    try:
        return VOICES[key]
    except KeyError:
        raise ValueError(f"unknown voice {key!r}; known: {', '.join(VOICES)}") from None


def missing_tools(voice_keys) -> list[str]:
    """Executables needed for these voices (plus sox) that are not on PATH."""
    needed = {"sox"} | {_BINARIES[get_voice(k).engine] for k in voice_keys}
    return sorted(b for b in needed if shutil.which(b) is None)


@lru_cache(maxsize=None)
def _installed_names(engine: str) -> frozenset[str]:
    """Voice names the engine has (flite and espeak-ng silently fall back to a default voice otherwise)."""
    try:
        if engine == "flite":
            res = subprocess.run(["flite", "-lv"], capture_output=True, text=True, timeout=30)
            return frozenset(res.stdout.split(":", 1)[-1].split())
        if engine == "espeak":
            res = subprocess.run(["espeak-ng", "--voices=variant"], capture_output=True, text=True, timeout=30)
            variants = {line.split()[4].split("/")[-1] for line in res.stdout.splitlines()[1:] if len(line.split()) > 4}
            return frozenset(f"en-us+{v}" for v in variants)
        if engine == "festival":
            return frozenset(p.name for p in Path("/usr/share/festival/voices").glob("*/*") if p.is_dir())
    except (OSError, subprocess.SubprocessError):
        pass
    return frozenset()


def voice_available(voice: Voice) -> bool:
    return shutil.which(_BINARIES[voice.engine]) is not None and voice.name in _installed_names(voice.engine)


def unavailable_voices(voice_keys) -> list[str]:
    """The voices among ``voice_keys`` that cannot be used on this machine."""
    return [k for k in voice_keys if not voice_available(get_voice(k))]


# --------------------------------------------------------------------------------------------- TTS


@dataclass
class TTSOutput:
    """Raw engine output for one utterance: a wav file and (flite/festival) phone segments."""

    wav: Path | None
    segments: list[tuple[float, float, str]] | None = None  # (start, end, phone), seconds, engine time
    error: str = ""


def _segments_from_ends(ends: list[tuple[float, str]]) -> list[tuple[float, float, str]]:
    out, start = [], 0.0
    for end, phone in ends:
        out.append((start, end, phone))
        start = end
    return out


def parse_flite_psdur(stdout: str) -> list[tuple[float, float, str]]:
    """``pau:0.184 dh:0.236 ...`` (segment end times) -> ``[(start, end, phone), ...]``.

    flite prints one line per sentence (utterance) with times restarting at 0; the wave is the
    utterances back to back, so each line is shifted by the end of the previous one.
    """
    ends: list[tuple[float, str]] = []
    offset = 0.0
    for line in stdout.splitlines():
        seg = [(float(m.group(2)), m.group(1)) for m in re.finditer(r"(\S+?):([0-9.]+)", line)]
        ends += [(offset + t, ph) for t, ph in seg]
        if seg:
            offset += seg[-1][0]
    return _segments_from_ends(ends)


def parse_festival_segs(text: str) -> list[tuple[float, float, str]]:
    """festival ``utt.save.segs`` file (``#`` header, then ``END 100 PHONE`` lines) -> segments."""
    body = text.split("#", 1)[1] if "#" in text else text
    ends = []
    for line in body.splitlines():
        parts = line.split()
        if len(parts) >= 3:
            ends.append((float(parts[0]), parts[2]))
    return _segments_from_ends(ends)


def _run(cmd: list[str], timeout: float, **kw) -> subprocess.CompletedProcess:
    return subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, timeout=timeout,
                          check=False, **kw)


def _check_wav(path: Path) -> str:
    if not path.is_file() or path.stat().st_size <= 44:
        return "engine wrote no audio"
    return ""


def _synth_flite(voice: Voice, utt_id: str, text: str, workdir: Path, timeout: float, stretch: float) -> TTSOutput:
    txt, wav = workdir / f"{utt_id}.txt", workdir / f"{utt_id}.tts.wav"
    txt.write_text(text + "\n")
    res = _run(["flite", "-voice", voice.name, "-psdur", "--setf", f"duration_stretch={stretch:.6f}", "-f", str(txt),
                "-o", str(wav)], timeout)
    err = _check_wav(wav) or (f"flite exit {res.returncode}: {res.stderr.strip()[:200]}" if res.returncode else "")
    if err:
        return TTSOutput(None, None, err)
    return TTSOutput(wav, parse_flite_psdur(res.stdout))


def _synth_espeak(voice: Voice, utt_id: str, text: str, workdir: Path, timeout: float, stretch: float) -> TTSOutput:
    txt, wav = workdir / f"{utt_id}.txt", workdir / f"{utt_id}.tts.wav"
    txt.write_text(text + "\n")
    wpm = round(ESPEAK_WPM / stretch)
    res = _run(["espeak-ng", "-v", voice.name, "-s", str(wpm), "-w", str(wav), "-f", str(txt)], timeout)
    err = _check_wav(wav) or (f"espeak-ng exit {res.returncode}: {res.stderr.strip()[:200]}" if res.returncode else "")
    return TTSOutput(None, None, err) if err else TTSOutput(wav, None)


def _scheme_string(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _synth_festival_batch(voice: Voice, items: list[tuple[str, str]], workdir: Path,
                          timeout_per_item: float, stretch: float) -> dict[str, TTSOutput]:
    """All items in ONE festival process; an item that fails inside festival does not stop the others."""
    lines = [f"(voice_{voice.name})", f"(Parameter.set 'Duration_Stretch {stretch:.6f})"]
    if voice.name.endswith("_hts"):  # HTS voices ignore Duration_Stretch; hts_engine's -r is the speaking rate
        lines.append(f'(set! hts_engine_params (append hts_engine_params (list (list "-r" {1.0 / stretch:.6f}))))')
    for utt_id, text in items:
        wav, segs = workdir / f"{utt_id}.tts.wav", workdir / f"{utt_id}.segs"
        lines.append(
            "(unwind-protect (begin "
            f"(set! u (Utterance Text {_scheme_string(text)})) (utt.synth u) "
            f"(utt.save.wave u {_scheme_string(str(wav))} 'riff) "
            f"(utt.save.segs u {_scheme_string(str(segs))})) "
            f"(format t \"FAILED {utt_id}\\n\"))"
        )
    script = workdir / f"festival_{items[0][0]}.scm"
    script.write_text("\n".join(lines) + "\n")
    out: dict[str, TTSOutput] = {}
    try:
        res = _run(["festival", "-b", str(script)], timeout=10.0 + timeout_per_item * len(items))
        log = (res.stdout + res.stderr).strip()
    except subprocess.TimeoutExpired:
        log = "festival batch timed out"
    for utt_id, _ in items:
        wav, segs = workdir / f"{utt_id}.tts.wav", workdir / f"{utt_id}.segs"
        err = _check_wav(wav)
        if err:
            out[utt_id] = TTSOutput(None, None, f"festival: {err}; {log[-200:]}")
        else:
            seg = parse_festival_segs(segs.read_text()) if segs.is_file() else None
            out[utt_id] = TTSOutput(wav, seg)
    return out


def synthesize(voice: Voice, items: list[tuple[str, str]], workdir: Path,
               timeout_per_item: float = 30.0, stretch: float = 1.0) -> dict[str, TTSOutput]:
    """Synthesise ``[(utt_id, text), ...]`` with one voice into ``workdir``, durations stretched by ``stretch``
    inside the engine (the timings include it); never raises for one bad item."""
    workdir.mkdir(parents=True, exist_ok=True)
    if not items:
        return {}
    if not voice_available(voice):
        return {utt_id: TTSOutput(None, None, f"voice {voice.key} is not installed") for utt_id, _ in items}
    if voice.engine == "festival":
        return _synth_festival_batch(voice, items, workdir, timeout_per_item, stretch)
    fn = _synth_flite if voice.engine == "flite" else _synth_espeak
    out = {}
    for utt_id, text in items:
        try:
            out[utt_id] = fn(voice, utt_id, text, workdir, timeout_per_item, stretch)
        except (subprocess.TimeoutExpired, OSError) as e:
            out[utt_id] = TTSOutput(None, None, f"{voice.engine}: {type(e).__name__}: {e}")
    return out


def _concat(pieces: list[TTSOutput], out_wav: Path) -> TTSOutput:
    """Concatenate per-sentence engine outputs; segment times are shifted by the real audio lengths
    (and clipped to them: diphone voices report a final pause longer than the audio they write)."""
    audio, segments, rate, offset = [], [], None, 0.0
    have_segments = all(p.segments for p in pieces)
    for p in pieces:
        x, sr = sf.read(str(p.wav), dtype="float32", always_2d=True)
        if rate is not None and sr != rate:
            raise RuntimeError(f"engine changed sample rate between sentences ({rate} vs {sr})")
        rate = sr
        dur = x.shape[0] / sr
        audio.append(x[:, 0])
        if have_segments:
            for start, end, ph in p.segments:
                if start < dur:
                    segments.append((offset + start, offset + min(end, dur), ph))
        offset += dur
    sf.write(str(out_wav), np.concatenate(audio), rate, subtype="PCM_16")
    return TTSOutput(out_wav, segments if have_segments else None)


def synthesize_utterances(voice: Voice, items: list[tuple[str, tuple[str, ...]]], workdir: Path,
                          timeout_per_item: float = 30.0, stretch: float = 1.0) -> dict[str, TTSOutput]:
    """``[(utt_id, (sentence, ...)), ...]``: each sentence synthesised on its own (festival: all in one
    batch process), then joined, so phone times are exact across sentence boundaries."""
    flat = [(f"{utt_id}.s{j}", text) for utt_id, sents in items for j, text in enumerate(sents)]
    raw = synthesize(voice, flat, workdir, timeout_per_item, stretch)
    out: dict[str, TTSOutput] = {}
    for utt_id, sents in items:
        pieces = [raw[f"{utt_id}.s{j}"] for j in range(len(sents))]
        errors = [p.error for p in pieces if p.wav is None]
        if errors or not pieces:
            out[utt_id] = TTSOutput(None, None, errors[0] if errors else "no sentences")
            continue
        try:
            out[utt_id] = _concat(pieces, workdir / f"{utt_id}.joined.wav")
        except (RuntimeError, OSError, sf.LibsndfileError) as e:
            out[utt_id] = TTSOutput(None, None, f"joining sentences: {e}")
    return out


# ------------------------------------------------------------------------------------ perturbation


@dataclass(frozen=True)
class Perturbation:
    """What makes a speaker out of a base voice (all fixed per speaker)."""

    speed: float = 1.0  # pitch + formants + duration (0.92..1.08)
    tempo: float = 1.0  # duration only
    pitch_cents: float = 0.0  # pitch + formants (like sox pitch)
    reverberance: float = 0.0  # sox reverb %, 0 = no reverb
    room_scale: float = 50.0
    snr_db: float = 30.0  # additive noise, per-utterance jitter added on top
    noise_color: str = "white"  # white | pink | brown
    peak: float = 0.7  # output peak level (full scale = 1)

    @property
    def pitch_factor(self) -> float:
        return 2.0 ** (self.pitch_cents / 1200.0)

    @property
    def resample_factor(self) -> float:
        """The chain's sox ``speed``: speed times the pitch shift (module docstring)."""
        return round(self.speed * self.pitch_factor, 6)

    @property
    def engine_stretch(self) -> float:
        """The engine's duration stretch: pitch factor / tempo (module docstring)."""
        return round(self.pitch_factor / self.tempo, 6)

    @property
    def time_scale(self) -> float:
        """Output time / time in the engine's (stretched) output."""
        return 1.0 / self.resample_factor

    def sox_effects(self, rate: int = SAMPLE_RATE) -> list[str]:
        eff = ["remix", "-", "speed", f"{self.resample_factor:.6f}"]
        if self.reverberance > 0:
            eff += ["reverb", f"{self.reverberance:.0f}", "50", f"{self.room_scale:.0f}"]
        eff += ["rate", "-v", str(rate)]
        return eff

    def describe(self) -> str:
        rev = f" reverb={self.reverberance:.0f}" if self.reverberance > 0 else ""
        return (f"speed={self.speed:.3f} tempo={self.tempo:.3f} pitch={self.pitch_cents:+.0f}c{rev} "
                f"snr={self.snr_db:.1f}dB {self.noise_color}")


def sox_perturb(in_wav: Path, p: Perturbation, rate: int = SAMPLE_RATE, timeout: float = 60.0) -> np.ndarray:
    """Run the speaker's sox chain; returns float32 mono audio at ``rate``.

    ``-D`` (no dither) and ``-R`` (repeatable) make the output bit-exact for the same input.
    """
    out_wav = in_wav.with_suffix(".sox.wav")
    cmd = ["sox", "-D", "-R", str(in_wav), "-e", "floating-point", "-b", "32", str(out_wav)] + p.sox_effects(rate)
    res = _run(cmd, timeout)
    if res.returncode != 0:
        raise RuntimeError(f"sox failed ({res.returncode}): {res.stderr.strip()[:300]}")
    audio, sr = sf.read(str(out_wav), dtype="float32", always_2d=True)
    if sr != rate:
        raise RuntimeError(f"sox produced {sr} Hz, expected {rate}")
    return audio.mean(axis=1)


def colored_noise(n: int, color: str, rng: np.random.Generator) -> np.ndarray:
    """Unit-RMS noise: white, pink (1/f power) or brown (1/f^2 power), shaped in the frequency domain."""
    white = rng.standard_normal(n)
    if color != "white":
        spec = np.fft.rfft(white)
        f = np.arange(spec.shape[0], dtype=np.float64)
        f[0] = 1.0
        spec *= f ** (-0.5 if color == "pink" else -1.0)
        spec[0] = 0.0
        white = np.fft.irfft(spec, n)
    rms = np.sqrt(np.mean(white**2)) if n else 1.0
    return (white / max(rms, 1e-12)).astype(np.float32)


def active_rms(x: np.ndarray, rate: int = SAMPLE_RATE) -> float:
    """RMS over the louder half of 25 ms frames (speech activity), so pauses do not lower the level."""
    frame = int(0.025 * rate)
    n = len(x) // frame
    if n == 0:
        return float(np.sqrt(np.mean(x**2))) if len(x) else 0.0
    energy = np.mean(x[: n * frame].reshape(n, frame) ** 2, axis=1)
    top = np.sort(energy)[n // 2:]
    return float(np.sqrt(np.mean(top)))


def render(speech: np.ndarray, p: Perturbation, snr_db: float, lead_pad: float, tail_pad: float,
           rng: np.random.Generator, rate: int = SAMPLE_RATE) -> np.ndarray:
    """Pad with silence, add noise at exactly ``snr_db`` (w.r.t. active speech RMS), scale to ``p.peak``.

    Returns int16 samples.
    """
    sig_rms = active_rms(speech, rate)
    if not np.isfinite(sig_rms) or sig_rms < 1e-6:
        raise ValueError("silent or invalid audio after perturbation")
    lead, tail = int(round(lead_pad * rate)), int(round(tail_pad * rate))
    x = np.concatenate([np.zeros(lead, np.float32), speech.astype(np.float32), np.zeros(tail, np.float32)])
    noise = colored_noise(len(x), p.noise_color, rng)
    x = x + noise * np.float32(sig_rms / (10.0 ** (snr_db / 20.0)))
    x *= np.float32(p.peak / max(float(np.max(np.abs(x))), 1e-9))
    return np.clip(np.round(x * 32767.0), -32768, 32767).astype(np.int16)


def write_flac(path: Path, samples: np.ndarray, rate: int = SAMPLE_RATE) -> None:
    """16-bit mono FLAC, written atomically."""
    from asr_base.io import atomic_path

    with atomic_path(path) as tmp:
        sf.write(str(tmp), samples, rate, format="FLAC", subtype="PCM_16")
