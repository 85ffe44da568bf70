"""Run the `tis` command as a process that file permissions apply to, even when the tests run as root
(CI does): root's permission override (CAP_DAC_OVERRIDE) is dropped for that process with setpriv, so a
read-only folder is really read-only to it."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys

import pytest


def run_tis_unprivileged(*argv) -> tuple[int, str, str]:
    """`tis ARGV...` in a subprocess without root's permission override: (exit code, stdout, stderr)."""
    cmd = [sys.executable, "-m", "tis.cli", *map(str, argv)]
    if os.geteuid() == 0:
        setpriv = shutil.which("setpriv")
        if not setpriv:
            pytest.fail("running as root needs setpriv (util-linux) to test read-only folders")
        cmd = [setpriv, "--bounding-set=-dac_override,-dac_read_search", "--inh-caps=-all", *cmd]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    return done.returncode, done.stdout, done.stderr
