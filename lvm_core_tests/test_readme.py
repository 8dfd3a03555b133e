"""The README's code blocks run as written, and its two commands stay in sync with CI."""
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
README = (ROOT / "README.md").read_text(encoding="utf-8")
BLOCKS = re.findall(r"```python\n(.*?)```", README, re.S)


@pytest.mark.parametrize("index", range(len(BLOCKS)))
def test_readme_python_block_runs(index, capsys):
    exec(compile(BLOCKS[index], f"README.md block {index}", "exec"), {"__name__": "readme"})


def test_readme_has_python_blocks():
    assert len(BLOCKS) >= 2


def test_ci_runs_the_readme_test_command():
    """.ci/run installs and tests exactly as the README's test command says."""
    ci = (ROOT / ".ci" / "run").read_text()
    bash = re.findall(r"```bash\n(.*?)```", README, re.S)
    test_cmd = [b.strip() for b in bash if "pytest" in b]
    assert len(test_cmd) == 1, "the README must have exactly one test command"
    install, run = [part.strip() for part in test_cmd[0].split("&&")]
    assert install.replace("pip install", "python -m pip install --quiet") in ci
    assert ("python -m pytest" in run) and (run in ci)
