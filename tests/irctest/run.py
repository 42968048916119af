"""Run progval/irctest's server tests against chatd (and, to compare, Debian's ngircd).

An engineer runs this by hand; CI does not (the suite needs a mirror of
irctest, a venv from PyPI and a few minutes). From the repo:

    .venv/bin/python tests/irctest/run.py                   # chatd only
    .venv/bin/python tests/irctest/run.py --compare-ngircd  # and ngircd, side by side
    .venv/bin/python tests/irctest/run.py -- -k Who -x      # anything after -- goes to pytest

What it does:

1. ``git clone -q`` the local mirror of irctest (``--mirror``, default
   /work/.mirror/progval+irctest/repo, or $IRCTEST_MIRROR) into a scratch
   directory, removed afterwards. Nothing of irctest is copied into the repo.
2. Makes a venv with irctest's requirements.txt and pytest-xdist, cached in
   ~/.cache/chatd-irctest/ (one per requirements.txt, so a rerun is quick).
   chatd is NOT installed in it: tests/irctest/chatd_controller.py starts
   chatd with the repo's .venv/bin/python (or $CHATD_PYTHON).
3. Runs the files for issue 15 (:data:`FILES`) with :data:`MARKERS`, the
   selection irctest's Makefile uses for third-party servers, with
   ``--controller chatd_controller`` (this folder on PYTHONPATH); with
   ``--compare-ngircd``, the same selection with irctest's own
   ``irctest.controllers.ngircd`` (needs ``ngircd`` on PATH:
   ``apt-get install ngircd``).
4. Prints pass/skip/fail/xfail per file for each server, then chatd's
   failures (each known one with why chatd fails it: :data:`KNOWN_FAILURES`)
   and skips with their reasons.

Exit status: 0 when chatd fails only the known cases (skips and xfails are
expected), 1 when it fails another one, 2 when the run could not be set up.
A known case that passes is reported, so the list can shrink.
Set IRCTEST_DEBUG_LOGS=1 to see the servers' own output.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import shutil
import subprocess
import sys
import tempfile
import time
import venv
import xml.etree.ElementTree as ET
from collections import Counter, defaultdict
from pathlib import Path

HERE = Path(__file__).resolve().parent
DEFAULT_MIRROR = os.environ.get("IRCTEST_MIRROR", "/work/.mirror/progval+irctest/repo")
CACHE = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "chatd-irctest"

#: The areas issue 15 names: registration, PING, PRIVMSG/NOTICE, NICK, QUIT,
#: JOIN/PART/NAMES/TOPIC, WHO, LUSERS, ISUPPORT (irctest/server_tests/).
FILES = (
    "connection_registration",
    "pingpong",
    "messages",
    "regressions",
    "quit",
    "join",
    "part",
    "names",
    "topic",
    "who",
    "lusers",
    "isupport",
)
#: irctest's Makefile selection for servers without services (NGIRCD_MARKERS).
MARKERS = "not services and not implementation-specific and not deprecated and not strict"
#: pytest-xdist workers: each test starts its own server, so they overlap well.
DEFAULT_WORKERS = 4

OUTCOMES = ("pass", "skip", "fail", "xfail")

_OPER = "chatd has no IRC operators (OPER): its operators use chatd admin"
#: The cases chatd fails on purpose, or until the hub changes, and why
#: (as printed in the notes: file::class::test).
KNOWN_FAILURES = {
    "isupport::IsupportTestCase::testPrefix": "the test needs +v in PREFIX; chatd has +o only",
    "names::NamesTestCase::testNames2812Secret": "chatd has no secret channels (+s)",
    "topic::TopicPrivilegesTestCase::testTopicPrivileges": "chatd has no voice (+v)",
    "topic::TopicTestCase::testTopicMode": (
        "no -t: a room's topic is its operators' while it has any"
    ),
    **{
        f"who::WhoTestCase::{test}[{mask}]": _OPER
        for test in ("testWhoNickOper", "testWhoNickAwayAndOper")
        for mask in ("exact", "casefolded", "mask")
    },
}


class SetupError(Exception):
    """The run could not be prepared (no mirror, no ngircd, pip failed)."""


def checkout(mirror: Path, into: Path) -> Path:
    if not (mirror / "HEAD").exists() and not (mirror / ".git").exists():
        raise SetupError(f"{mirror}: no irctest mirror there; pass --mirror PATH")
    target = into / "irctest"
    subprocess.run(["git", "clone", "-q", str(mirror), str(target)], check=True)
    return target


def irctest_venv(src: Path) -> Path:
    """A venv with ``src``'s requirements and pytest-xdist; made once per requirements file."""
    requirements = (src / "requirements.txt").read_bytes()
    key = hashlib.sha256(requirements + b"pytest-xdist").hexdigest()[:12]
    env_dir = CACHE / f"venv-{key}"
    python = env_dir / "bin" / "python"
    stamp = env_dir / ".complete"
    if stamp.exists():
        return python
    print(f"making {env_dir} (once) ...", flush=True)
    shutil.rmtree(env_dir, ignore_errors=True)
    venv.create(env_dir, with_pip=True)
    pip = [str(python), "-m", "pip", "install", "-q", "--disable-pip-version-check"]
    done = subprocess.run([*pip, "-r", str(src / "requirements.txt"), "pytest-xdist"])
    if done.returncode != 0:
        raise SetupError(f"{env_dir}: pip install failed (rc {done.returncode}); see above")
    stamp.write_text("ok\n")
    return python


def run_suite(
    python: Path, src: Path, controller: str, workers: int, extra: list[str], report: Path
) -> float:
    """Run the selection with ``controller``; the JUnit XML goes to ``report``.
    Returns the seconds it took."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, (str(HERE), env.get("PYTHONPATH"))))
    command = [
        str(python),
        "-m",
        "pytest",
        "-p",
        "no:cacheprovider",
        "--controller",
        controller,
        "-m",
        MARKERS,
        "-q",
        "-rfEs",
        f"--junitxml={report}",
    ]
    if workers > 1:
        command += ["-n", str(workers)]
    command += [f"irctest/server_tests/{name}.py" for name in FILES]
    command += extra
    print(f"\n== {controller}: {' '.join(command[1:])}", flush=True)
    started = time.monotonic()
    subprocess.run(command, cwd=src, env=env)  # its rc is read from the report
    return time.monotonic() - started


def outcomes(report: Path) -> tuple[dict[str, Counter[str]], list[tuple[str, str, str]]]:
    """Per-file outcome counts, and (outcome, test, reason) for every test."""
    counts: dict[str, Counter[str]] = defaultdict(Counter)
    notes: list[tuple[str, str, str]] = []
    if not report.exists():
        raise SetupError(f"{report}: pytest wrote no report; see its output above")
    for case in ET.parse(report).iter("testcase"):
        classname = case.get("classname", "")
        parts = classname.split(".")
        module = parts[2] if len(parts) > 2 else classname
        test = f"{module}::{parts[-1] if len(parts) > 3 else ''}::{case.get('name')}"
        outcome, reason = "pass", ""
        for child in case:
            if child.tag in ("failure", "error"):
                outcome = "fail"
                reason = (child.get("message") or child.tag).partition("\n")[0]
            elif child.tag == "skipped":
                xfail = child.get("type") == "pytest.xfail"
                outcome = "xfail" if xfail else "skip"
                reason = child.get("message") or ""
        counts[module][outcome] += 1
        notes.append((outcome, test, reason[:160]))
    return counts, notes


def cell(counter: Counter[str]) -> str:
    return " ".join(f"{counter[o]:>{len(o)}}" for o in OUTCOMES)


def table(results: dict[str, dict[str, Counter[str]]]) -> str:
    """The per-file table, one column group (pass skip fail xfail) per server."""
    names = list(results)
    columns = " ".join(OUTCOMES)
    head = f"{'file':<25}" + "".join(f" | {name:^{len(columns)}}" for name in names)
    sub = f"{'':<25}" + "".join(f" | {columns}" for _ in names)
    lines = [head, sub, "-" * len(sub)]
    totals = {name: Counter[str]() for name in names}
    for file in FILES:
        row = f"{file:<25}"
        for name in names:
            counter = results[name].get(file, Counter())
            totals[name].update(counter)
            row += f" | {cell(counter)}"
        lines.append(row)
    lines.append("-" * len(sub))
    lines.append(f"{'total':<25}" + "".join(f" | {cell(totals[n])}" for n in names))
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description="Run progval/irctest against chatd (see this file's docstring)."
    )
    parser.add_argument("--mirror", type=Path, default=Path(DEFAULT_MIRROR))
    parser.add_argument("--compare-ngircd", action="store_true", help="also run Debian's ngircd")
    parser.add_argument("-n", "--workers", type=int, default=DEFAULT_WORKERS)
    parser.add_argument("--keep", action="store_true", help="keep the scratch checkout")
    parser.add_argument("pytest_args", nargs="*", help="after --: passed to pytest")
    args = parser.parse_args(argv)

    if args.compare_ngircd and shutil.which("ngircd") is None:
        print("run.py: --compare-ngircd needs ngircd on PATH: apt-get install ngircd")
        return 2
    scratch = Path(tempfile.mkdtemp(prefix="chatd-irctest-"))
    try:
        src = checkout(args.mirror, scratch)
        head = subprocess.run(
            ["git", "-C", str(src), "log", "-1", "--format=%H %cs"],
            capture_output=True,
            text=True,
        ).stdout.strip()
        python = irctest_venv(src)
        servers = {"chatd": "chatd_controller"}
        if args.compare_ngircd:
            servers["ngircd"] = "irctest.controllers.ngircd"
        results: dict[str, dict[str, Counter[str]]] = {}
        notes: dict[str, list[tuple[str, str, str]]] = {}
        took: dict[str, float] = {}
        for name, controller in servers.items():
            report = scratch / f"{name}.xml"
            took[name] = run_suite(python, src, controller, args.workers, args.pytest_args, report)
            results[name], notes[name] = outcomes(report)
    except (SetupError, subprocess.CalledProcessError) as exc:
        print(f"run.py: {exc}")
        return 2
    finally:
        if args.keep:
            print(f"scratch kept: {scratch}")
        else:
            shutil.rmtree(scratch, ignore_errors=True)

    print(f"\nirctest {head}, -m '{MARKERS}'")
    print("  ".join(f"{name}: {took[name]:.0f} s" for name in servers))
    print(table(results))
    # chatd's every non-pass with its reason; the others' failures, to compare.
    for name in servers:
        for outcome in ("fail", "skip", "xfail") if name == "chatd" else ("fail",):
            listed = [(t, r) for o, t, r in notes[name] if o == outcome]
            if listed:
                print(f"\n{name} {outcome} ({len(listed)}):")
                for test, reason in sorted(listed):
                    known = KNOWN_FAILURES.get(test) if name == "chatd" else None
                    print(f"  {test}: {f'known: {known}' if known else reason}")
    failed = {t for o, t, _ in notes["chatd"] if o == "fail"}
    unexpected = sorted(failed - KNOWN_FAILURES.keys())
    fixed = sorted({t for o, t, _ in notes["chatd"] if o == "pass"} & KNOWN_FAILURES.keys())
    for test in fixed:
        print(f"\nnow passes (take it out of KNOWN_FAILURES): {test}")
    if unexpected:
        print(f"\nchatd failed {len(unexpected)} case(s) not known to fail:")
        for test in unexpected:
            print(f"  {test}")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
