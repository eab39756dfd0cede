"""`tally serve`: a warm process per home that forks each billing run off code already loaded.

A cold `tally run` spends ~10 s before its run begins (Python, Dagster, dbt and Great
Expectations imports, the definitions, the prepared dbt manifest); for runs every hour or
minute that is a third of an incremental run. `tally serve --home H` loads all of it once
and listens on `H/.tally-serve.sock`. `tally run` and `tally close` on that home hand it their
arguments, working directory, environment and terminal (stdin, stdout and stderr, passed as
file descriptors); it forks, and the child runs the command through the same code as a cold
command, in its own process (a run shares nothing with the next one but the imported modules),
writing straight to the caller's terminal. The caller exits with the child's status; Ctrl-C
in the caller interrupts the child.

Without a server, or when the server's code is older than the code on disk (an upgrade, an
edit), the command runs cold as before; a stale server says so and stops. `TALLY_SERVE=off`
makes the commands run cold even when a server listens.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import selectors
import signal
import socket
import sys
import sysconfig
import threading
from collections.abc import Sequence
from pathlib import Path

SOCKET_NAME = ".tally-serve.sock"
_MAX_MESSAGE = 1 << 20
_REPO = Path(__file__).resolve().parents[1]
# what a server has loaded: Tally's Python packages, and the dbt files its definitions and
# prepared manifest are built from (`manifest.source_files`); no logs, targets or dot-files
_PYTHON = ("orchestration", "ingestion", "billing_sync")


def socket_path(home: str | Path) -> Path:
    return Path(home).expanduser().resolve() / SOCKET_NAME


def code_fingerprint() -> str:
    """Tally's code on disk (paths and modification times) and the installed packages: when it
    differs from what the server computed at its start, the server runs old code."""
    digest = hashlib.sha256(sys.executable.encode())
    from orchestration.manifest import source_files

    files = [p for name in _PYTHON for p in (_REPO / name).rglob("*.py")] + source_files()
    for path in sorted(files):
        relative = path.relative_to(_REPO)
        if any(part.startswith(".") for part in relative.parts):
            continue
        with contextlib.suppress(FileNotFoundError):  # gone since listed: not code
            digest.update(f"{relative}:{path.stat().st_mtime_ns}\n".encode())
    # installed distributions by name and version (not the folder's mtime: Python creates
    # __pycache__ there on a first import)
    for entry in sorted(os.scandir(sysconfig.get_paths()["purelib"]), key=lambda e: e.name):
        if entry.name.endswith(".dist-info"):
            digest.update(entry.name.encode())
    return digest.hexdigest()


# --- the caller ------------------------------------------------------------------------------


def delegate(home: str, argv: Sequence[str]) -> int | None:
    """Run `tally <argv>` in the home's server; its exit status, or None to run it here (cold)."""
    if os.environ.get("TALLY_SERVE", "").lower() == "off":
        return None
    path = socket_path(home)
    if not path.exists():
        return None
    conn = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        conn.connect(str(path))
    except OSError:  # a socket file left by a server that died
        conn.close()
        print(f"tally serve: no server answers on {path}; running here", file=sys.stderr)
        return None
    with conn:
        request = {
            "argv": list(argv),
            "cwd": os.getcwd(),
            "env": dict(os.environ),
        }
        for stream in (sys.stdout, sys.stderr):
            stream.flush()
        socket.send_fds(conn, [json.dumps(request).encode()], [0, 1, 2])
        reply = _await_reply(conn)
    if reply.get("stale"):
        print("tally serve: its code is older than this command's; running here", file=sys.stderr)
        return None
    return int(reply.get("exit", 1))


def _await_reply(conn: socket.socket) -> dict:
    """The server's answer; Ctrl-C here interrupts the run in the server."""
    data = b""
    while True:
        try:
            chunk = conn.recv(4096)
        except KeyboardInterrupt:
            conn.sendall(b"I")
            continue
        if not chunk:
            break
        data += chunk
    if not data:
        print("tally serve stopped before the run ended (see the run in the UI)", file=sys.stderr)
        return {"exit": 1}
    return json.loads(data)


# --- the server ------------------------------------------------------------------------------


def serve(home: str | Path, *, announce=print) -> int:
    """Load everything a billing run imports, then fork one child per request until stopped."""
    from orchestration.home import TallyHome
    from orchestration.runner import activate

    tally_home = TallyHome.at(home)
    activate(tally_home)
    fingerprint = code_fingerprint()
    _preload()
    if threading.active_count() != 1:  # forking a process with threads can deadlock the child
        announce(f"tally serve: {threading.active_count()} threads after loading; not serving")
        return 1
    path = socket_path(tally_home.root)
    try:
        listener = _listen(path)
    except OSError as exc:  # e.g. a path longer than a Unix socket's 107 bytes
        announce(f"tally serve: cannot listen on {path}: {exc.strerror or exc}")
        return 1
    if listener is None:
        announce(f"tally serve: another server listens on {path}")
        return 1
    stopping: list[int] = []

    def stop(signum, _frame) -> None:
        stopping.append(signum)

    previous = {s: signal.signal(s, stop) for s in (signal.SIGTERM, signal.SIGINT)}
    announce(f"tally serve: ready on {path} (pid {os.getpid()})")
    try:
        return _loop(listener, fingerprint, stopping, announce)
    finally:
        listener.close()
        path.unlink(missing_ok=True)
        for signum, handler in previous.items():
            signal.signal(signum, handler)


def _preload() -> None:
    """What a run imports and reads before its first step, so children start with it."""
    from orchestration.defs.transformation.dbt_runner import prepared_manifest
    from orchestration.runner import load_definitions

    load_definitions()
    prepared_manifest()
    import dbt.adapters.duckdb  # noqa: F401
    import dbt.cli.main  # noqa: F401
    import great_expectations  # noqa: F401


def _listen(path: Path) -> socket.socket | None:
    probe = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        probe.connect(str(path))
        return None  # a live server
    except OSError:
        path.unlink(missing_ok=True)  # nobody listens: a leftover
    finally:
        probe.close()
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    old_umask = os.umask(0o077)  # the socket runs commands as this user: this user only
    try:
        listener.bind(str(path))
    finally:
        os.umask(old_umask)
    listener.listen(16)
    listener.setblocking(False)
    return listener


def _loop(listener: socket.socket, fingerprint: str, stopping: list[int], announce) -> int:
    """Accept requests and reap children until stopped (then the running ones finish first)."""
    selector = selectors.DefaultSelector()
    selector.register(listener, selectors.EVENT_READ)
    callers: dict[int, socket.socket] = {}  # child pid -> its caller's connection
    stale = False
    while callers or not (stopping or stale):
        for key, _ in selector.select(timeout=0.2):
            if key.fileobj is listener:
                if not (stopping or stale):
                    stale = not _accept(listener, selector, callers, fingerprint, announce)
                continue
            # the caller was interrupted (Ctrl-C) or went away: interrupt its run
            conn, pid = key.fileobj, key.data
            try:
                gone = not conn.recv(16)
            except OSError:
                gone = True
            if gone:
                selector.unregister(conn)
            _signal(pid, signal.SIGINT)
        for pid in list(callers):
            finished, status = os.waitpid(pid, os.WNOHANG)
            if not finished:
                continue
            conn, code = callers.pop(pid), os.waitstatus_to_exitcode(status)
            announce(f"tally serve: process {pid} exited with {code}")
            if conn in (key.fileobj for key in selector.get_map().values()):
                selector.unregister(conn)
            with contextlib.suppress(OSError):  # the caller may be gone
                conn.sendall(json.dumps({"exit": code}).encode())
            conn.close()
    if stale:
        announce("tally serve: the code on disk changed since it started; stopped (start it again)")
    return 0


def _accept(
    listener: socket.socket,
    selector: selectors.BaseSelector,
    callers: dict[int, socket.socket],
    fingerprint: str,
    announce,
) -> bool:
    """Fork the child that runs one request; False when the server's code is stale."""
    try:
        conn, _ = listener.accept()
    except BlockingIOError:
        return True
    conn.setblocking(True)
    message, fds, _, _ = socket.recv_fds(conn, _MAX_MESSAGE, 3)
    request = json.loads(message)
    if code_fingerprint() != fingerprint:  # an upgrade or an edit since the server started
        for fd in fds:
            os.close(fd)
        conn.sendall(json.dumps({"stale": True}).encode())
        conn.close()
        return False
    for stream in (sys.stdout, sys.stderr):
        stream.flush()
    pid = os.fork()
    if pid == 0:  # the child: the caller's command, as a cold process would run it
        selector.close()
        for other in (listener, conn, *callers.values()):
            other.close()
        _run_child(request, fds)
    for fd in fds:
        os.close(fd)
    callers[pid] = conn
    selector.register(conn, selectors.EVENT_READ, pid)
    announce(f"tally serve: `tally {' '.join(request['argv'])}` in process {pid}")
    return True


def _run_child(request: dict, fds: list[int]) -> None:
    code = 1
    try:
        signal.signal(signal.SIGINT, signal.default_int_handler)
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
        for target, fd in enumerate(fds):
            os.dup2(fd, target)
            os.close(fd)
        os.chdir(request["cwd"])
        os.environ.clear()
        os.environ.update(request["env"])
        os.environ["TALLY_SERVE"] = "off"  # the child runs the command itself, never hands it on
        from orchestration.cli import main

        code = main(request["argv"])
    except KeyboardInterrupt:
        code = 130
    except BaseException:  # noqa: BLE001 - the caller sees it, as on a cold run
        import traceback

        traceback.print_exc()
    finally:
        for stream in (sys.stdout, sys.stderr):
            with contextlib.suppress(Exception):
                stream.flush()
        os._exit(code)


def _signal(pid: int, signum: int) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signum)
