"""docs/alerts.yml: valid Prometheus rules (`promtool check rules`, Debian
`prometheus`), and each alert fires on the series it is meant for and not
before its `for` (`promtool test rules tests/cluster/alerts_test.yml`).
Every metric an alert names is one a cairn process publishes (the names
are checked against the sources, so a renamed family breaks this test)."""
import os
import re
import subprocess

from harness import ROOT

ALERTS = os.path.join(ROOT, "docs", "alerts.yml")
TESTS = os.path.join(ROOT, "tests", "cluster", "alerts_test.yml")


def promtool(*args):
    p = subprocess.run(["promtool"] + list(args), capture_output=True,
                       text=True, timeout=120, cwd=ROOT)
    assert p.returncode == 0, p.stdout + p.stderr
    return p.stdout


def test_rules_are_valid():
    out = promtool("check", "rules", ALERTS)
    assert "SUCCESS" in out, out


def test_rules_fire_as_meant():
    promtool("test", "rules", TESTS)


def test_alerts_name_published_metrics():
    text = open(ALERTS).read()
    names = set(re.findall(r"\bcairn_[a-z_]+", text))
    sources = ""
    for d, _, files in os.walk(os.path.join(ROOT, "src")):
        for f in files:
            if f.endswith(".c"):
                sources += open(os.path.join(d, f)).read()
    missing = sorted(n for n in names if '"%s"' % n not in sources)
    assert not missing, missing
