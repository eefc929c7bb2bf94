"""data_prep.align.report: CTM sanity numbers and phone-boundary agreement with reference timings."""

import pytest


def test_boundary_agreement_and_ctm_sanity(tmp_path):
    from data_prep.align.report import boundary_agreement, ctm_sanity, read_ctm

    (tmp_path / "ctm").write_text("u1 1 0.00 0.30 SIL\nu1 1 0.30 0.10 DH\nu1 1 0.40 0.12 AH\nu1 1 0.52 0.20 SIL\n"
                                  "u2 1 0.00 0.25 K\nu2 1 0.25 0.30 AE\n"
                                  "u3 1 0.00 0.10 SIL\nu3 1 0.10 0.10 S\n")
    ref = tmp_path / "ref"
    ref.mkdir()
    # u1: same phones (flite names, ax = AH), boundaries 0.31/0.40/0.60 vs 0.30/0.40/0.52
    (ref / "u1.txt").write_text("0.0 0.31 pau\n0.31 0.40 dh\n0.40 0.60 ax\n0.60 0.8 pau\n")
    # u2: different phones (K AA vs K AE): only the nearest-boundary measure counts it
    (ref / "u2.txt").write_text("0.0 0.26 k\n0.26 0.55 aa\n")
    ctm = read_ctm(tmp_path / "ctm")
    s = ctm_sanity(ctm)
    assert s["utterances"] == 3 and s["fraction_start_sil"] == pytest.approx(2 / 3)
    assert s["fraction_end_sil"] == pytest.approx(1 / 3)
    assert s["mean_duration_per_phone"]["AH"] == pytest.approx(0.12)
    b = boundary_agreement(ctm, ref, tolerance=0.02)
    assert b["utterances_compared"] == 2 and b["without_reference"] == 1
    assert b["fraction_same_phone_sequence"] == 0.5
    assert b["paired_boundaries"] == 4 and b["paired_within_tol"] == pytest.approx(3 / 4)  # 0.31, 0.40, 0.40 ok
    assert b["reference_boundaries"] == 8 and b["nearest_within_tol"] == pytest.approx(7 / 8)
    # nearest aligned minus reference: u1 -0.01 0 0 -0.08, u2 0 -0.01 -0.01 0
    assert b["nearest_within"]["0.01"] == pytest.approx(7 / 8) and b["nearest_within"]["0.05"] == pytest.approx(7 / 8)
    assert b["nearest_median_offset_s"] == pytest.approx(-0.005)
    assert "by_speaker" not in b
    # u1's dh start and ax end and u2's first start and last end touch a pause or an edge: -0.01 -0.08 0 0
    assert b["by_position"]["next_to_pause"] == {"nearest_within_tol": pytest.approx(3 / 4), "reference_boundaries": 4,
                                                 "nearest_median_offset_s": pytest.approx(-0.005)}
    assert b["by_position"]["inner"] == {"nearest_within_tol": 1.0, "reference_boundaries": 4,
                                         "nearest_median_offset_s": pytest.approx(-0.005)}
    per = boundary_agreement(ctm, ref, tolerance=0.02, utt2spk={"u1": "s1", "u2": "s2", "u3": "s1"})["by_speaker"]
    assert per["s1"] == {"nearest_within_tol": pytest.approx(3 / 4), "reference_boundaries": 4,
                         "nearest_median_offset_s": pytest.approx(-0.005)}
    assert per["s2"] == {"nearest_within_tol": 1.0, "reference_boundaries": 4,
                         "nearest_median_offset_s": pytest.approx(-0.005)}


def test_offset_histogram_and_its_plot(tmp_path):
    from data_prep.align.report import boundary_agreement, read_ctm, write_boundary_offsets_png

    (tmp_path / "ctm").write_text("u1 1 0.00 0.30 SIL\nu1 1 0.30 0.10 DH\nu1 1 0.40 0.12 AH\nu1 1 0.52 0.20 SIL\n"
                                  "u2 1 0.00 0.20 K\nu2 1 0.20 0.40 AE\n")
    ref = tmp_path / "ref"
    ref.mkdir()
    (ref / "u1.txt").write_text("0.0 0.31 pau\n0.31 0.40 dh\n0.40 0.60 ax\n0.60 0.8 pau\n")
    (ref / "u2.txt").write_text("0.0 0.27 k\n0.27 0.66 ae\n")
    b = boundary_agreement(read_ctm(tmp_path / "ctm"), ref, tolerance=0.02)
    h = b["offset_histogram"]
    # nearest aligned minus reference: u1 -0.01 0 0 -0.08; u2 0 -0.07 -0.07 -0.06
    assert len(h["bin_centres_s"]) == len(h["counts"]) == 21
    assert h["bin_centres_s"][0] == -0.05 and h["bin_centres_s"][10] == 0 and h["bin_centres_s"][-1] == 0.05
    assert h["counts"][10] == 3 and h["counts"][8] == 1 and sum(h["counts"]) == 4
    assert h["below"] == 4 and h["above"] == 0
    splits = {"train": {"sanity": {"boundaries": b}}, "dev": {"sanity": {}}}
    png = tmp_path / "boundary_offsets.png"
    write_boundary_offsets_png(png, splits)
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    write_boundary_offsets_png(png, {"dev": {"sanity": {}}})  # no split compared: no plot, and the old one goes
    assert not png.exists()
