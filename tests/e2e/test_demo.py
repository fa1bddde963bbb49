"""`make demo` (tools/demo.py) without a terminal: the plain walk ends with the relay reopened
after the payment and exit 0; Ctrl-C or a kill leaves no process of it behind."""
import os
import re
import shutil
import signal
import subprocess
import sys
import time

import pytest

from mita_procs import ROOT, wait_until

DEMO = os.path.join(ROOT, "tools", "demo.py")


def start_demo(*args):
    return subprocess.Popen([sys.executable, DEMO, *args], cwd=ROOT, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, text=True)


def descendants(pid):
    """Every process below pid, from /proc (children of children included)."""
    children = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open("/proc/%s/stat" % entry) as f:
                    fields = f.read().rsplit(")", 1)[1].split()
            except OSError:
                continue
            children.setdefault(int(fields[1]), []).append(int(entry))
    found, todo = [], [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            found.append(child)
            todo.append(child)
    return found


def alive(pid):
    try:
        with open("/proc/%d/stat" % pid) as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def test_demo_without_a_terminal_shows_the_relay_reopening_after_the_payment():
    demo = start_demo()
    try:
        out, _ = demo.communicate(timeout=120)
    finally:
        demo.kill()
    assert demo.returncode == 0, out
    lines = out.splitlines()

    def at(text):
        return next(i for i, line in enumerate(lines) if text in line)
    # The relay may close a moment before the status poll hears M-Pesa's confirmation.
    for story in (("alert: low balance", "relay OPEN", "STK push sent", "M-Pesa confirmed",
                   "the meter came back on after the payment", "OK: the relay reopened"),
                  ("STK push sent", "relay CLOSED: the load is back on",
                   "the meter came back on after the payment")):
        order = [at(text) for text in story]
        assert order == sorted(order), out
    assert "curl" in out and "paybill" in out and "join" in out  # how to try more
    assert re.search(r"dashboard: http://127\.0\.0\.1:\d+/ ", out), out  # where to watch it
    assert "sign in as the customer with API key  mk_" in out, out


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGKILL])
def test_stopping_the_demo_leaves_no_process_behind(sig):
    demo = start_demo()
    children, lines = [], []

    def cloud_up():
        lines.append(demo.stdout.readline())
        assert lines[-1], "the demo ended before its cloud was up:\n" + "".join(lines)
        return "cloud up" in lines[-1]
    try:
        wait_until(cloud_up, 60, "the demo's cloud up")
        children = descendants(demo.pid)
        assert children, "the cloud should run as a child process"
        os.kill(demo.pid, sig)
        demo.wait(30)
        wait_until(lambda: not any(alive(pid) for pid in children), 15,
                   "the demo's children %s to be gone after %s" % (children, sig.name))
    finally:
        demo.kill()
        demo.wait(10)
        for pid in children:
            if alive(pid):
                os.kill(pid, signal.SIGKILL)
        # A killed demo cannot remove its temporary folder: do it for it.
        folder = re.search(r"SQLite in (/\S+?mita-demo-\w+)", "".join(lines))
        if folder and sig == signal.SIGKILL:
            shutil.rmtree(folder.group(1), ignore_errors=True)
        elif folder:
            assert not os.path.exists(folder.group(1)), "Ctrl-C should remove the demo's folder"
    if sig == signal.SIGINT:
        assert demo.returncode == 130


class Terminal:
    """The demo on a pseudo-terminal: what a person sees, and keys they press."""

    def __init__(self):
        import pty
        self.pid, self.fd = pty.fork()
        if self.pid == 0:  # the child: become the demo, on a terminal of a common size
            import fcntl
            import struct
            import termios
            fcntl.ioctl(0, termios.TIOCSWINSZ, struct.pack("HHHH", 40, 100, 0, 0))
            os.chdir(ROOT)
            os.execv(sys.executable, [sys.executable, DEMO])
        self.seen = ""

    def read_until(self, text, timeout_s):
        self.read_until_true(lambda seen: text in seen, timeout_s, repr(text))

    def read_until_true(self, check, timeout_s, what):
        import select

        def more():
            ready, _, _ = select.select([self.fd], [], [], 0.05)
            if ready:
                try:
                    self.seen += os.read(self.fd, 65536).decode(errors="replace")
                except OSError:  # the demo closed the terminal
                    raise AssertionError("the demo ended before %s:\n%s" % (what, self.seen))
            return check(self.seen)
        wait_until(more, timeout_s, "%s on the demo's terminal" % what, every_s=0)

    def press(self, key):
        os.write(self.fd, key.encode())

    def close(self):
        try:
            os.kill(self.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        os.close(self.fd)


def test_demo_in_a_terminal_has_a_live_panel_where_m_pays_and_q_quits():
    term = Terminal()
    try:
        term.read_until("mita simulator", 60)  # the panel's title
        term.read_until("the meter came back on after the payment", 90)
        term.press("m")
        term.read_until("you pressed m: the customer pays KES 50", 20)
        # Each redraw shows the story's last lines: in the newest one, a confirmation below
        # the key press is the second payment's.
        term.read_until_true(lambda seen: seen.rfind("M-Pesa confirmed KES 50")
                             > seen.rfind("you pressed m"), 30, "the m payment confirmed")
        term.press("q")
        term.read_until("everything is stopped", 30)
        _, status = os.waitpid(term.pid, 0)
        assert os.waitstatus_to_exitcode(status) == 0
        story = term.seen.split("what happened:")[-1]
        assert story.count("M-Pesa confirmed KES 50") == 2, story  # the scripted one, then m
    finally:
        term.close()


def test_ctrl_c_at_the_panel_stops_the_demo_and_its_cloud():
    term = Terminal()
    children = []
    try:
        term.read_until("mita simulator", 60)
        children = descendants(term.pid)
        assert children, "the cloud should run as a child process"
        term.press("\x03")  # the terminal turns it into SIGINT for the demo, not its cloud
        term.read_until("stopped (Ctrl-C)", 30)
        _, status = os.waitpid(term.pid, 0)
        assert os.waitstatus_to_exitcode(status) == 130
        wait_until(lambda: not any(alive(pid) for pid in children), 15,
                   "the demo's children %s to be gone" % children)
    finally:
        term.close()
        for pid in children:
            if alive(pid):
                os.kill(pid, signal.SIGKILL)


def test_demo_exits_1_when_the_meter_is_not_back_on_in_time():
    # In real time the KES 6 last 6 minutes: no cut, no payment within a 3 s budget.
    demo = start_demo("--speed", "1", "--budget", "3")
    try:
        out, _ = demo.communicate(timeout=60)
    finally:
        demo.kill()
    assert demo.returncode == 1, out
    assert "FAILED: the meter was not back on after a payment" in out
    assert "OK:" not in out
