"""Promises about the project itself: one logger name, install lines that work from a
checkout, a demo that installs only the package."""
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _text_files():
    for folder in ("agentstream", "docs", "examples"):
        for path in (ROOT / folder).rglob("*"):
            if path.suffix in (".py", ".rst", ".md", ".ipynb") and "_build" not in path.parts:
                yield path
    yield ROOT / "README.rst"


def test_one_logger_name():
    for path in (ROOT / "agentstream").rglob("*.py"):
        for call in re.findall(r"getLogger\(([^)]*)\)", path.read_text(encoding="utf-8")):
            assert call == '"agentstream"', f"{path.relative_to(ROOT)}: getLogger({call})"


def test_install_lines_work_from_a_checkout():
    """Until the package is published, ``pip install agentstream[...]`` cannot work."""
    bad = re.compile(r"pip install agentstream(\[|\b)(?!.*not work)")
    for path in _text_files():
        for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
            assert not bad.search(line), f"{path.relative_to(ROOT)}:{number}: {line.strip()}"


def test_make_demo_installs_only_the_package():
    makefile = (ROOT / "Makefile").read_text(encoding="utf-8")
    stamp = re.search(r"^demo: (\S+)$", makefile, re.M).group(1)
    recipe = re.search(rf"^\$\({stamp[2:-1]}\):.*\n((?:\t.*\n)+)", makefile, re.M).group(1)
    installs = [line for line in recipe.splitlines() if "pip install" in line and "--upgrade pip" not in line]
    assert installs and all(re.search(r"-e \.(\s|$)", line) for line in installs), installs
    assert "[test" not in recipe
