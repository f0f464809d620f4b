"""Every example script runs end to end with a tiny budget."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"


def test_beta_sweep_runs_quickly(tmp_path):
    result = subprocess.run(
        [sys.executable, str(EXAMPLES / "beta_sweep.py"), "--quick", "--betas", "4", "--epochs", "1",
         "--n-metric", "20", "--out", str(tmp_path / "sweep")],
        capture_output=True, text=True, timeout=300,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    assert sorted(p.suffix for p in (tmp_path / "sweep").glob("*.png"))  # figures written
