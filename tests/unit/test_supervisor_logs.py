"""``crm-qb up``'s supervisor: children's output goes to log files (or to the console with --verbose), and the
end of a crashed child's log is shown on the console."""

from __future__ import annotations

import io
import sys
from pathlib import Path

from crm_qb.supervisor import Supervisor


def test_output_goes_to_a_log_file_per_child_and_a_crash_shows_its_end(tmp_path: Path) -> None:
    console = io.StringIO()
    sup = Supervisor(out=console, redact=lambda line: line.replace("secret", "[redacted]"), log_dir=tmp_path / "logs")
    code = sup.run_once("step", [sys.executable, "-c", "print('noise with a secret'); print('more noise')"])
    assert code == 0 and console.getvalue() == ""
    assert (tmp_path / "logs" / "step.log").read_text() == "[step] noise with a secret\n[step] more noise\n" \
        .replace("secret", "[redacted]")
    sup.start("crasher", [sys.executable, "-c", "import sys; print('why it died'); sys.exit(3)"])
    assert sup.wait() == 1
    shown = console.getvalue()
    assert "crasher exited with code 3" in shown and "why it died" in shown and "[up] stopped" in shown


def test_without_a_log_dir_output_is_relayed_to_the_console() -> None:
    console = io.StringIO()
    sup = Supervisor(out=console)
    assert sup.run_once("step", [sys.executable, "-c", "print('hello')"]) == 0
    assert console.getvalue() == "[step] hello\n" and sup.log_path("step") is None
