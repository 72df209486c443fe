"""scripts/sentiment_report.py (the encoder battlefield) runs end to end on a tiny budget:
its table, its figure, reuse of finished runs, --speed, and a clear error for a bad flag."""
import os
import subprocess
import sys

import pytest

from conftest import REPO, cli_env

SCRIPT = os.path.join(REPO, "scripts", "sentiment_report.py")


def run(args, cwd):
    return subprocess.run([sys.executable, SCRIPT, *args], cwd=cwd, env=cli_env(),
                          capture_output=True, text=True, timeout=300)


def test_battlefield_table_figure_and_speed(tmp_path):
    if not os.environ.get("LM_DATA_DIR"):
        pytest.skip("LM_DATA_DIR not set: the sentiment sets live outside the repository")
    args = ["--sets", "phrases", "--encoders", "bag,cnn-lstm", "--seeds", "0",
            "--out_dir", "runs", "--figure", "f.png", "--", "--max_epochs", "2"]
    p = run(args, tmp_path)
    assert p.returncode == 0, p.stderr
    rows = [line for line in p.stdout.splitlines() if line.startswith("| ")]
    assert rows[0].startswith("| encoder | phrases (20 test) |") and len(rows) == 3
    assert rows[2].startswith("| cnn-lstm | ") and "/20 (" in rows[2]
    assert (tmp_path / "f.png").stat().st_size > 1000
    assert sorted(os.listdir(tmp_path / "runs")) == ["phrases-s0-bag", "phrases-s0-cnn-lstm"]
    again = run(args, tmp_path)  # finished runs are reused: the same table
    assert [line for line in again.stdout.splitlines() if line.startswith("| ")] == rows
    p = run(["--sets", "phrases", "--encoders", "bag,cnn", "--speed", "1"], tmp_path)
    assert p.returncode == 0, p.stderr
    assert "| cnn | " in p.stdout and "texts/s" in p.stdout
    p = run(["--sets", "phrases", "--", "--filters", "many"], tmp_path)
    assert p.returncode != 0 and "error: --filters must be int" in p.stderr
