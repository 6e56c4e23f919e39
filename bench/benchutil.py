"""Helpers shared by the bench/*.py scripts (run them as `python3 bench/X.py`:
their own directory is on sys.path, so `from benchutil import ...` works)."""
import os
import signal
import socket
import subprocess


def free_port():
    """A loopback port free at the time of the call."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def spawn(argv, d, log="log"):
    """Starts `argv` in its own session in directory `d`, output appended
    to `d/<log>`."""
    out = open(os.path.join(d, log), "a")
    return subprocess.Popen(argv, stdout=out, stderr=out, start_new_session=True, cwd=d)


def kill(p):
    """SIGKILL to the process group of a `spawn`ed process; waits for it."""
    try:
        os.killpg(p.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    p.wait()
