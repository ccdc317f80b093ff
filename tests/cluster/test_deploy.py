"""deploy/: the systemd units pass `systemd-analyze verify` (with the
binary path pointed at the build), every example config names only flags
its command knows (`--config FILE --help` exits 0 only if every flag
before --help parsed), and the Prometheus example passes `promtool check
config` together with docs/alerts.yml."""
import os
import shutil
import subprocess
import tempfile

import pytest

from harness import ROOT, cairn_bin

DEPLOY = os.path.join(ROOT, "deploy")


def test_units_verify():
    if shutil.which("systemd-analyze") is None:
        pytest.skip("systemd-analyze is not installed")
    with tempfile.TemporaryDirectory() as tmp:
        for name in sorted(os.listdir(DEPLOY)):
            if not name.endswith((".service", ".timer")):
                continue
            text = open(os.path.join(DEPLOY, name)).read()
            with open(os.path.join(tmp, name), "w") as f:
                f.write(text.replace("/usr/local/bin/cairn", cairn_bin()))
        units = sorted(os.path.join(tmp, n) for n in os.listdir(tmp))
        assert len(units) == 5, units
        p = subprocess.run(["systemd-analyze", "verify", "--man=no"] + units,
                           capture_output=True, text=True, timeout=60)
        assert p.returncode == 0, p.stdout + p.stderr


@pytest.mark.parametrize("cmd", ["node", "router", "controller"])
def test_example_configs_parse(cmd):
    conf = os.path.join(DEPLOY, cmd + ".conf.example")
    p = subprocess.run([cairn_bin(), cmd, "--config", conf, "--help"],
                       capture_output=True, text=True, timeout=30)
    assert p.returncode == 0, p.stdout + p.stderr
    # and a flag the command does not know is refused
    with tempfile.NamedTemporaryFile("w", suffix=".conf") as f:
        f.write(open(conf).read() + "no-such-flag 1\n")
        f.flush()
        p = subprocess.run([cairn_bin(), cmd, "--config", f.name, "--help"],
                           capture_output=True, text=True, timeout=30)
        assert p.returncode == 2, p.stdout + p.stderr


def test_prometheus_example():
    if shutil.which("promtool") is None:
        pytest.skip("promtool is not installed")
    with tempfile.TemporaryDirectory() as tmp:
        shutil.copy(os.path.join(DEPLOY, "prometheus.yml.example"),
                    os.path.join(tmp, "prometheus.yml"))
        shutil.copy(os.path.join(ROOT, "docs", "alerts.yml"), tmp)
        p = subprocess.run(["promtool", "check", "config", "prometheus.yml"],
                           capture_output=True, text=True, timeout=60,
                           cwd=tmp)
        assert p.returncode == 0, p.stdout + p.stderr
