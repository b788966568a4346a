"""Console commands (issue 19.8): `--help` answers without importing TensorFlow (or the other
slow libraries), and s3f-predict / s3f-export print no CUDA-registration noise on a CPU machine."""

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from s3f_kit.run import env as s3f_env

REPO = Path(__file__).resolve().parents[1]
SLOW_LIBRARIES = ("tensorflow", "keras", "sklearn", "cv2", "matplotlib")
COMMANDS = {  # console script → module:function (pyproject.toml), plus the results command
    "s3f-sweep": "s3f_kit.sweep.sweep:main",
    "s3f-data": "data_setup.__main__:main",
    "s3f-predict": "s3f_kit.apply.predict:main",
    "s3f-swap": "s3f_kit.apply.swap:main",
    "s3f-export": "s3f_kit.apply.export:main",
    "s3f-results": "s3f_kit.reports.results:main",
    "python -m s3f_kit.reports.results": "s3f_kit.reports.results:__main__",
}
PROBE = """\
import importlib, json, runpy, sys
module, function = sys.argv[1].split(":")
code = None
try:
    if function == "__main__":
        sys.argv = [module, "--help"]
        runpy.run_module(module, run_name="__main__")
    else:
        code = getattr(importlib.import_module(module), function)(["--help"])
except SystemExit as stop:
    code = stop.code
loaded = [name for name in {libraries!r} if name in sys.modules]
print("PROBE " + json.dumps({{"code": code, "loaded": loaded}}))
"""


def _env():
    return {**os.environ, "PYTHONPATH": str(REPO)}


def test_every_console_script_is_probed():
    tomllib = pytest.importorskip("tomllib")
    scripts = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["scripts"]
    assert scripts == {k: v for k, v in COMMANDS.items() if not k.startswith("python")}


@pytest.mark.parametrize("command", COMMANDS, ids=lambda c: c.split()[-1])
def test_help_answers_without_tensorflow(command):
    probe = PROBE.format(libraries=SLOW_LIBRARIES)
    done = subprocess.run(
        [sys.executable, "-c", probe, COMMANDS[command]],
        capture_output=True, text=True, cwd=REPO, env=_env(), timeout=120,
    )  # fmt: skip
    assert "usage:" in done.stdout + done.stderr
    # the user's names only: commands and real module paths, never the kit's import aliases
    # (s3f_training for s3f_kit.run.training), a maintainer's "Why ~N lines" note or an old
    # spelling of a command
    text = (done.stdout + done.stderr).split("PROBE ")[0]
    assert not re.findall(r"\bs3f_(?!kit\b|common\b|preprocessing\b)\w+", text), text
    assert "Why ~" not in text and "python -m data_setup" not in text, text
    result = json.loads(done.stdout.split("PROBE ")[-1])
    assert result["loaded"] == [], f"{command} --help imported {result['loaded']}"
    if not command.startswith("python"):
        assert result["code"] == 0


@pytest.mark.skipif(s3f_env.has_gpu_driver(), reason="the noise is a CPU machine's")
@pytest.mark.parametrize("module", ["s3f_kit.apply.predict", "s3f_kit.apply.export"])
def test_no_cuda_registration_noise_on_a_cpu_machine(module, tmp_path):
    args = [str(tmp_path / "no-model"), str(tmp_path / "out")]
    done = subprocess.run(
        [sys.executable, "-m", module, *args],
        capture_output=True, text=True, cwd=REPO, env=_env(), timeout=300,
    )  # fmt: skip
    assert done.returncode == 2
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and "error:" in lines[0] and "no-model" in lines[0], done.stderr
