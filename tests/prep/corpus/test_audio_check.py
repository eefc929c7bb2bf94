"""audio_check: every problem with a file comes back as a kind + reason, never as an exception."""

import numpy as np
import soundfile as sf

from data_prep.corpus.audio_check import check_all_audio, check_audio


def test_good_short_wrong_rate_and_not_flac(tmp_path):
    x = (0.3 * np.sin(np.arange(16000) / 5) * 32767).astype(np.int16)
    sf.write(tmp_path / "good.flac", x, 16000, format="FLAC")
    sf.write(tmp_path / "short.flac", x[:100], 16000, format="FLAC")
    sf.write(tmp_path / "8k.flac", x, 8000, format="FLAC")
    (tmp_path / "junk.flac").write_bytes(b"ID3?" * 10 + b"garbage")
    (tmp_path / "text.flac").write_text("hello")
    good = check_audio("g", str(tmp_path / "good.flac"), 16000, 400, "full")
    assert (good.kind, good.num_samples, good.sample_rate) == ("", 16000, 16000)
    assert check_audio("s", str(tmp_path / "short.flac"), 16000, 400, "full").kind == "too-short"
    assert check_audio("r", str(tmp_path / "8k.flac"), 16000, 400, "header").kind == "sample-rate"
    assert check_audio("t", str(tmp_path / "text.flac"), 16000, 400, "full").reason.startswith("unreadable audio")
    assert check_audio("m", str(tmp_path / "missing.flac"), 16000, 400, "full").kind == "unreadable-audio"
    got = check_all_audio([("g", str(tmp_path / "good.flac")), ("s", str(tmp_path / "short.flac"))], 16000, 0.025,
                          "ends", jobs=1)
    assert [c.kind for c in got] == ["", "too-short"]
