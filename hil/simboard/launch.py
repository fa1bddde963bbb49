"""Start and stop `python -m hil.simboard` as a child process group (for pytest fixtures):
whatever happens to the test run, the board and its MicroPython process go with it."""
import atexit
import os
import select
import signal
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


class LaunchError(Exception):
    pass


class SimBoardProcess:
    def __init__(self, flash, firmware=None, config=None, rig=None, log_path=None,
                 pzem_pty=False):
        self.flash = flash
        self.firmware = firmware
        self.config = config
        self.rig = rig
        self.log_path = log_path
        self.pzem_pty = pzem_pty
        self.proc = None
        self.port = None
        self.pzem_port = None

    def start(self, timeout=20.0):
        argv = [sys.executable, "-m", "hil.simboard", "--flash", self.flash, "--verbose"]
        for opt, value in (("--firmware", self.firmware), ("--config", self.config),
                           ("--rig", self.rig)):
            if value:
                argv += [opt, value]
        if self.pzem_pty:
            argv.append("--pzem-pty")
        log = open(self.log_path, "ab") if self.log_path else subprocess.DEVNULL
        # A session of its own: stop() ends the harness and the board process in one signal.
        self.proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=log, cwd=ROOT,
                                     start_new_session=True)
        if log is not subprocess.DEVNULL:
            log.close()
        atexit.register(self.stop)
        ready, _, _ = select.select([self.proc.stdout], [], [], timeout)
        line = self.proc.stdout.readline().decode().strip() if ready else ""
        if not line.startswith("/dev/"):
            self.stop()
            raise LaunchError("the simulated board did not start (got %r)" % line)
        self.port = line
        if self.pzem_pty:
            # Printed with the first line (or EOF if the harness died): no wait of its own, and
            # select() would not see a line already in the reader's buffer.
            self.pzem_port = self.proc.stdout.readline().decode().strip()
            if not self.pzem_port:
                self.stop()
                raise LaunchError("the simulated board printed no PZEM port")
        return line

    def press_reset(self, power_cycle=False):
        """The EN button (or unplug and plug back): a hardware reset from outside."""
        os.kill(self.proc.pid, signal.SIGUSR2 if power_cycle else signal.SIGUSR1)

    def stop(self):
        proc = self.proc
        if proc is None:
            return
        self.proc = None
        for sig, wait in ((signal.SIGTERM, 5.0), (signal.SIGKILL, 5.0)):
            try:
                os.killpg(proc.pid, sig)
            except ProcessLookupError:
                break
            try:
                proc.wait(timeout=wait)
                break
            except subprocess.TimeoutExpired:
                continue
        try:
            os.killpg(proc.pid, signal.SIGKILL)  # whatever the harness left behind
        except ProcessLookupError:
            pass
        proc.stdout.close()
        proc.wait()

    def running(self):
        return self.proc is not None and self.proc.poll() is None


def wait_gone(pid, timeout=5.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return True
        time.sleep(0.02)
    return False
