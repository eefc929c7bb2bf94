"""Every registered subcommand imports and answers --help (catches broken stage modules early)."""

import subprocess
import sys

import pytest

from asr_kd import cli as asr_cli
from data_prep import cli as prep_cli


def _available(commands):
    import importlib.util

    return [(name, module) for name, module, _ in commands if importlib.util.find_spec(module) is not None]


@pytest.mark.parametrize(
    "entry,name",
    [("asr_kd.cli", n) for n, _ in _available(asr_cli.COMMANDS)]
    + [("data_prep.cli", n) for n, _ in _available(prep_cli.COMMANDS)],
)
def test_subcommand_help(entry, name, capsys):
    """In-process (an interpreter per subcommand cost minutes); the entry points run as processes below."""
    main = {"asr_kd.cli": asr_cli.main, "data_prep.cli": prep_cli.main}[entry]
    with pytest.raises(SystemExit) as exit_info:
        main([name, "--help"])
    out = capsys.readouterr().out
    assert exit_info.value.code == 0
    assert "usage:" in out and name in out


def test_top_level_help_lists_available_commands():
    out = subprocess.run([sys.executable, "-m", "data_prep.cli", "--help"], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    for name, _ in _available(prep_cli.COMMANDS):
        assert name in out.stdout


def test_unknown_command_fails():
    out = subprocess.run([sys.executable, "-m", "asr_kd.cli", "no-such-stage"], capture_output=True, text=True, timeout=120)
    assert out.returncode != 0


def test_conf_file_arguments(tmp_path):
    """``@file`` arguments: one or more options per line, comments ignored (Kaldi conf style)."""
    conf = tmp_path / "dl.conf"
    conf.write_text("# download options\n--parts dev-clean test-clean  # two parts\n--keep-archives\n")
    from asr_base.cli import build_parser

    parser = build_parser("data-prep", "", [c for c in prep_cli.COMMANDS if c[0] == "download"])
    args = parser.parse_args(["download", "--out-dir", str(tmp_path), f"@{conf}"])
    assert args.parts == ["dev-clean", "test-clean"] and args.keep_archives
