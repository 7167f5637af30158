"""Run README's "First job in 60 seconds" block verbatim against a running `make run`.

The block is the ```bash fence between `<!-- first-job -->` and `<!-- /first-job -->` in README.md.
bash runs it as it is (with errexit and pipefail, in --cwd, default the repository), so any command
that fails fails the run. Its last command prints the job's final status and ends with a comment
naming it (`... # revoked`): the status printed must be that one.

    make run                               # in one terminal
    python3 scripts/readme_first_job.py    # in another; BASE=http://127.0.0.1:9000 for make run PORT=9000

Exit status: 0 the block ran and the job ended as it says, 1 it did not, 2 no block in README.
"""

import argparse
import os
import re
import signal
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
START, END = "<!-- first-job -->", "<!-- /first-job -->"
FENCE = re.compile(r"^```bash\n(.*?)^```", re.MULTILINE | re.DOTALL)
STATUS = re.compile(r"#\s*(\w+)\s*$")


def extract(readme: Path) -> str:
    """The block's shell code, or SystemExit(2) naming what is missing."""
    text = readme.read_text()
    start, end = text.find(START), text.find(END)
    if start < 0 or end < start:
        raise SystemExit(f"{readme}: no {START} ... {END} block")
    fence = FENCE.search(text, start, end)
    if fence is None:
        raise SystemExit(f"{readme}: the {START} block has no ```bash fence")
    return fence.group(1)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--readme", type=Path, default=ROOT / "README.md")
    parser.add_argument("--cwd", type=Path, default=ROOT, help="where the block runs (it reads var/admin_password)")
    parser.add_argument("--timeout", type=float, default=120, help="seconds the block may take (default 120)")
    options = parser.parse_args(argv)
    try:
        code = extract(options.readme)
    except SystemExit as error:
        print(f"readme_first_job: {error}", file=sys.stderr)
        return 2
    last = [line for line in code.splitlines() if line.strip()][-1]
    expected = STATUS.search(last)
    if expected is None:
        print(
            f"readme_first_job: the block's last command must end with the status it prints (# revoked): {last}",
            file=sys.stderr,
        )
        return 1
    # A session of its own: on a timeout the block's curl goes too, not only bash.
    block = subprocess.Popen(
        ["bash", "-e", "-o", "pipefail", "-c", code],
        cwd=options.cwd,
        stdout=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    try:
        stdout, _ = block.communicate(timeout=options.timeout)
    except subprocess.TimeoutExpired:
        os.killpg(block.pid, signal.SIGKILL)
        print(block.communicate()[0], end="")
        print(f"readme_first_job: the block took more than {options.timeout:g} s", file=sys.stderr)
        return 1
    print(stdout, end="")
    if block.returncode != 0:
        print(f"readme_first_job: the block failed with exit status {block.returncode}", file=sys.stderr)
        return 1
    printed = (stdout.splitlines() or [""])[-1].strip()
    if printed != expected.group(1):
        print(
            f"readme_first_job: the job ended {printed!r}, the block says {expected.group(1)!r}",
            file=sys.stderr,
        )
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
