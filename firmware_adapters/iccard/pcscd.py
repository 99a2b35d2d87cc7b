"""Runs pcscd as a child process with the vpcd virtual reader on a chosen port.

pcscd's client socket is fixed at /run/pcscd/pcscd.comm, so one pcscd serves the machine:
`start()` refuses when another live pcscd holds it. The reader configuration goes to a
private folder (`pcscd -c DIR`) so the vpcd port is ours, not the system's.

`private=True` runs pcscd in a mount namespace of its own (`unshare --mount`; as a
non-root user also `--user --map-root-user`) with STATE/run bind-mounted over /run/pcscd,
so its socket is STATE/run/pcscd.comm and the machine's /run/pcscd (a system pcscd, another
test run's) is left alone. Clients find it through libpcsclite's `PCSCLITE_CSOCK_NAME`
(`client_env()`). Where namespaces are not allowed, `start()` raises DeviceAbsent saying so.

    python -m firmware_adapters.iccard.pcscd --port 35963 --insert   # demo: pcscd + card
    python -m firmware_adapters.iccard.pcscd --private --card card.json   # cuntong up
"""

from __future__ import annotations

import argparse
import os
import random
import shlex
import signal
import socket
import subprocess
import threading
import time
from pathlib import Path

from common import procs
from firmware_adapters.errors import DeviceAbsent

RUN_DIR = Path("/run/pcscd")
#: libpcsclite reads its socket's path from this variable (pcscd itself does not).
SOCKET_ENV = "PCSCLITE_CSOCK_NAME"
VPCD_DRIVER = Path("/usr/lib/pcsc/drivers/serial/libifdvpcd.so")
READER_NAME = "Virtual PCD 00 00"


def free_port_pair(host: str = "127.0.0.1", low: int = 20_000, high: int = 32_000) -> int:
    """A port P with P and P+1 both free, below the kernel's ephemeral range.

    vpcd listens on P and P+1 (two slots per reader). A port the kernel hands out for
    outgoing connections (32768 and up) may be taken as P+1 by the time pcscd binds it,
    which made the reader silently vanish on a busy machine.
    """
    for port in random.sample(range(low, high, 2), 200):
        try:
            with socket.socket() as a, socket.socket() as b:
                a.bind((host, port))
                b.bind((host, port + 1))
            return port
        except OSError:
            continue
    raise OSError(f"no free port pair between {low} and {high}")


def reader_conf(port: int) -> str:
    return (
        'FRIENDLYNAME "Virtual PCD"\n'
        f"DEVICENAME   /dev/null:0x{port:04X}\n"
        f"LIBPATH      {VPCD_DRIVER}\n"
        f"CHANNELID    0x{port:04X}\n"
    )


class Pcscd:
    """A foreground pcscd with vpcd listening on `port` (and `port + 1`)."""

    def __init__(self, port: int, state_dir: Path, private: bool = False) -> None:
        self.port = port
        self.state_dir = Path(state_dir).absolute()
        self.private = private
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def run_dir(self) -> Path:
        return self.state_dir / "run" if self.private else RUN_DIR

    @property
    def socket(self) -> Path:
        return self.run_dir / "pcscd.comm"

    def client_env(self) -> dict[str, str]:
        """What a PC/SC client process needs in its environment to reach this pcscd."""
        return {SOCKET_ENV: str(self.socket)} if self.private else {}

    def start(self, timeout: float = 10.0) -> Pcscd:
        binary = procs.find_binary("pcscd")
        if not VPCD_DRIVER.exists():
            raise DeviceAbsent(f"{VPCD_DRIVER} missing: apt-get install vsmartcard-vpcd")
        conf = self.state_dir / "reader.conf.d"
        conf.mkdir(parents=True, exist_ok=True)
        (conf / "vpcd").write_text(reader_conf(self.port))
        # --info, never --apdu: the APDU log would hold clear card numbers
        argv = [binary, "--foreground", "--info", "-c", str(conf)]
        if self.private:
            argv = self._namespaced(argv)
        else:
            _clear_stale_socket()
        (self.state_dir / "pcscd.log").unlink(missing_ok=True)
        self.proc = procs.start(argv, self.state_dir / "pcscd.log")
        deadline = time.monotonic() + timeout
        log = self.state_dir / "pcscd.log"
        # ready = "daemon ready" logged; probing vpcd's port would look like a card insertion
        while "daemon ready" not in log.read_text(errors="replace"):
            if self.proc.poll() is not None or time.monotonic() > deadline:
                self.stop()
                raise DeviceAbsent(f"pcscd did not start: {log.read_text()[-800:]}")
            time.sleep(0.05)
        return self

    def _namespaced(self, argv: list[str]) -> list[str]:
        """``argv`` in a mount namespace whose /run/pcscd is our own run folder."""
        unshare = procs.find_binary("unshare")
        run = self.run_dir
        if len(str(self.socket).encode()) > 107:  # sockaddr_un.sun_path
            raise DeviceAbsent(f"{self.socket}: too long for a socket path; use a shorter folder")
        run.mkdir(parents=True, exist_ok=True)
        for name in ("pcscd.comm", "pcscd.pid"):
            (run / name).unlink(missing_ok=True)  # ours alone: nobody else uses this folder
        if not RUN_DIR.is_dir():
            try:
                RUN_DIR.mkdir(parents=True)  # an empty mount point; pcscd makes it anyway
            except OSError as err:
                raise DeviceAbsent(f"no {RUN_DIR} to mount a private pcscd over: {err}") from err
        user = [] if os.geteuid() == 0 else ["--user", "--map-root-user"]
        inner = f"mount --bind {shlex.quote(str(run))} {RUN_DIR} && exec {shlex.join(argv)}"
        return [unshare, *user, "--mount", "--propagation", "private", "sh", "-c", inner]

    def stop(self) -> None:
        if self.proc is not None:
            procs.stop(self.proc)
            self.proc = None


def _clear_stale_socket() -> None:
    pid_file = RUN_DIR / "pcscd.pid"
    if pid_file.exists():
        try:
            pid = int(pid_file.read_text().strip() or 0)
            os.kill(pid, 0)
        except (ValueError, ProcessLookupError):
            pass
        else:
            raise DeviceAbsent(f"another pcscd (pid {pid}) owns {RUN_DIR}; stop it first")
    for name in ("pcscd.comm", "pcscd.pid"):
        (RUN_DIR / name).unlink(missing_ok=True)


def main(argv: list[str] | None = None) -> None:
    """Run pcscd + vpcd (and optionally an emulated PBOC card) until SIGINT / SIGTERM.

    With ``--card FILE`` the card is the one personalised in that file
    (``firmware_adapters.iccard.cardfile``), its ATC written back as it is used; it stays
    inserted, and is inserted again if vpcd drops it. Exits 1 when pcscd dies."""
    from firmware_adapters.iccard.cardfile import PersistentCard
    from firmware_adapters.iccard.vpcd import VirtualCardSlot

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, default=0x8C7B)
    parser.add_argument("--state-dir", type=Path, default=Path("/tmp/cuntong-pcscd"))
    parser.add_argument("--insert", action="store_true", help="insert the emulated card")
    parser.add_argument("--card", type=Path, help="insert the card personalised in this file")
    parser.add_argument(
        "--private", action="store_true", help="own mount namespace: socket in STATE/run"
    )
    args = parser.parse_args(argv)
    done = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: done.set())
    daemon = Pcscd(args.port, args.state_dir, private=args.private).start()
    slot = VirtualCardSlot(args.port)
    card = PersistentCard(args.card) if args.card else None
    try:
        if args.insert or card is not None:
            slot.insert(card)
        where = f" at {daemon.socket}" if args.private else ""
        print(f"pcscd{where} with reader '{READER_NAME}' on vpcd port {args.port}", flush=True)
        while not done.wait(0.5):
            if daemon.proc is None or daemon.proc.poll() is not None:
                print("pcscd exited", flush=True)
                raise SystemExit(1)
            if (args.insert or card is not None) and not slot.inserted:
                slot.insert(card)  # vpcd dropped the card (pcscd reset the reader)
    finally:
        slot.remove()
        daemon.stop()


if __name__ == "__main__":
    main()
