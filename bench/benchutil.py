"""Helpers shared by the bench/*.py scripts (run them as `python3 bench/X.py`:
their own directory is on sys.path, so `from benchutil import ...` works)."""
import socket


def free_port():
    """A loopback port free at the time of the call."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]
