"""fmdump -f follows the logs: every record that arrives is printed once, whatever time it carries."""

import json
import subprocess
import sys
import time

from fault_helpers import fm, wait_until


def test_fmdump_e_f_prints_each_new_ereport_even_one_the_detector_dated_earlier(daemon, tmp_path):
    daemon.start()
    fm(daemon, "fminject", "-q", "ereport.test.follow.before", check=True)
    out = tmp_path / "follow.out"
    with out.open("w") as f:
        proc = subprocess.Popen([sys.executable, "-m", "fault.cli.fmdump", "--root", str(daemon.root), "-e", "-f",
                                 "-c", "ereport.test.follow.*"], stdout=f, stderr=subprocess.STDOUT, env=daemon.env)
    try:
        wait_until(lambda: "ereport.test.follow.before" in out.read_text(), 20)
        fm(daemon, "fminject", "-q", "ereport.test.follow.new", check=True)
        wait_until(lambda: "ereport.test.follow.new" in out.read_text(), 20)
        old = tmp_path / "old.jsonl"  # seen an hour ago by its detector, and reported only now
        old.write_text(json.dumps({"class": "ereport.test.follow.old", "time": time.time() - 3600}) + "\n")
        fm(daemon, "fminject", "-q", "-f", str(old), check=True)
        fm(daemon, "fminject", "-q", "ereport.test.follow.last", check=True)
        wait_until(lambda: "ereport.test.follow.last" in out.read_text(), 20)
        time.sleep(1.5)
    finally:
        proc.terminate()
        proc.wait(10)
    classes = [line.split()[3] for line in out.read_text().splitlines()[1:]]
    assert classes == ["ereport.test.follow.before", "ereport.test.follow.new", "ereport.test.follow.old",
                       "ereport.test.follow.last"], out.read_text()
