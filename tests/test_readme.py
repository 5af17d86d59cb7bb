import re
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_readme_opens_with_two_setup_commands_and_ci_runs_the_test_one():
    readme = (ROOT / "README.md").read_text()
    blocks = re.findall(r"```bash\n(.*?)\n```", readme, re.S)
    quick_start, tests = blocks[0].strip(), blocks[1].strip()
    assert "promptkit demo" in quick_start and "pip install" in quick_start
    assert tests.endswith("pytest -q")
    assert tests in (ROOT / ".ci" / "run").read_text()


def test_promptkit_import_does_not_load_torch():
    import subprocess
    import sys

    code = "import promptkit, promptkit.cli, promptkit.library, promptkit.templates; import sys; print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "False"
