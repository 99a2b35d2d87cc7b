"""Sealing evidence packages in a dedicated worker process, off the API's event loop.

Hashing, encrypting, signing and writing a package is CPU work. In a thread it holds the
GIL, and every socket write of the event loop then waits for it (at 200 requests/s that
wait, not the sealing, set the API's p99). A ``Sealer`` keeps one worker process (forked
from a forkserver, not from the threaded API process) on a socket pair the event loop reads
directly: a job is one length-prefixed pickle out, the reply one back — no executor
threads in the API process to wake or to take the GIL.

The worker writes only into the job's partial directory (``sealjob``). If it dies, every
job it held fails with ``SealerFailed`` and its partial directories are removed: nothing is
in place, and the next job starts a fresh worker.
"""

from __future__ import annotations

import asyncio
import itertools
import multiprocessing
import pickle
import shutil
import signal
import socket
from dataclasses import dataclass, field
from multiprocessing.process import BaseProcess
from pathlib import Path
from typing import Any

from cloud.evidence import sealjob
from cloud.evidence.errors import EvidenceError
from cloud.evidence.sealjob import KeyBytes, SealJob


class SealerFailed(EvidenceError):
    """The sealing worker died or could not start; nothing was written, retry later."""


#: The worker's first bytes: it is running ``_serve`` and takes jobs without further delay.
READY = b"RDY\n"


def _frame(obj: Any) -> bytes:
    data = pickle.dumps(obj, protocol=pickle.HIGHEST_PROTOCOL)
    return len(data).to_bytes(4, "big") + data


def _portable(err: Exception) -> Exception:
    """The exception itself if it crosses the pipe, else an EvidenceError naming it."""
    try:
        pickle.loads(pickle.dumps(err))
    except Exception:
        return EvidenceError(f"{type(err).__name__}: {err}")
    return err


def _serve(sock: socket.socket) -> None:
    """The worker: seal jobs one after another until the API closes its end."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the API's to handle
    with sock, sock.makefile("rwb") as stream:
        stream.write(READY)  # after the child's own start-up (it imports the parent's main)
        stream.flush()
        while len(header := stream.read(4)) == 4:
            ident, keys, job = pickle.loads(stream.read(int.from_bytes(header, "big")))
            reply: tuple[int, bool, Path | Exception]
            try:
                reply = (ident, True, sealjob.seal(keys, job))
            except Exception as err:
                reply = (ident, False, _portable(err))
            stream.write(_frame(reply))
            stream.flush()


@dataclass
class Sealer:
    """One sealing worker process, started by ``start`` (or the first job) and restarted
    after it died."""

    _proc: BaseProcess | None = field(default=None, repr=False)
    _writer: asyncio.StreamWriter | None = field(default=None, repr=False)
    _replies: asyncio.Task[None] | None = field(default=None, repr=False)
    _pending: dict[int, tuple[asyncio.Future[Path], SealJob]] = field(default_factory=dict)
    _ids: itertools.count[int] = field(default_factory=itertools.count, repr=False)
    _starting: asyncio.Lock = field(default_factory=asyncio.Lock, repr=False)

    async def start(self) -> int:
        """Start the worker now and wait until it takes jobs (so the first request does not
        wait for it); its pid. SealerFailed if it exits during its start-up."""
        async with self._starting:
            if self._writer is None or self._proc is None:
                context = multiprocessing.get_context("forkserver")
                context.set_forkserver_preload([__name__])
                ours, theirs = socket.socketpair()
                proc = context.Process(
                    target=_serve, args=(theirs,), name="cuntong-sealer", daemon=True
                )
                try:
                    await asyncio.to_thread(proc.start)  # the forkserver may be starting
                finally:
                    theirs.close()
                reader, writer = await asyncio.open_connection(sock=ours)
                # Forked is not ready: the child still imports the parent's main module
                # (multiprocessing's start-up; seconds for a large one under load). Wait for
                # its first bytes here, so that wait is the app's start-up, not a request's.
                try:
                    ready = await reader.readexactly(len(READY))
                except (asyncio.IncompleteReadError, ConnectionError) as err:
                    ready = b""
                    cause: BaseException | None = err
                else:
                    cause = None
                if ready != READY:
                    writer.close()
                    await asyncio.to_thread(proc.join, 5)
                    raise SealerFailed(
                        f"the evidence sealing worker did not start (exit code {proc.exitcode})"
                    ) from cause
                self._writer = writer
                self._proc = proc
                self._replies = asyncio.create_task(self._read(reader, proc), name="sealer")
            assert self._proc.pid is not None
            return self._proc.pid

    async def seal(self, keys: KeyBytes, job: SealJob) -> Path:
        """The finished package in ``job.partial``; SealerFailed if the worker died."""
        await self.start()
        assert self._writer is not None
        ident = next(self._ids)
        done: asyncio.Future[Path] = asyncio.get_running_loop().create_future()
        self._pending[ident] = (done, job)
        try:
            self._writer.write(_frame((ident, keys, job)))
            await self._writer.drain()
        except ConnectionError:
            pass  # the reader fails the job with the worker's death
        try:
            return await done
        finally:
            self._pending.pop(ident, None)

    async def _read(self, reader: asyncio.StreamReader, proc: BaseProcess) -> None:
        try:
            while True:
                header = await reader.readexactly(4)
                size = int.from_bytes(header, "big")
                ident, ok, value = pickle.loads(await reader.readexactly(size))
                done, _ = self._pending.pop(ident, (None, None))
                if done is not None and not done.done():
                    (done.set_result if ok else done.set_exception)(value)
                elif ok:
                    # The request gave up (cancelled): its package is nobody's.
                    await asyncio.to_thread(shutil.rmtree, value, ignore_errors=True)
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            self._lost(proc)

    def _lost(self, proc: BaseProcess) -> None:
        """The worker is gone: fail what it held, clean their partial directories."""
        if self._proc is proc:
            self._proc, self._writer = None, None
        proc.join(0)
        for ident, (done, job) in list(self._pending.items()):
            del self._pending[ident]
            shutil.rmtree(job.partial, ignore_errors=True)
            if not done.done():
                done.set_exception(
                    SealerFailed(
                        f"evidence sealing worker died while sealing session {job.session_id}; "
                        "nothing was written, finish again"
                    )
                )

    def pids(self) -> list[int]:
        """The worker's process id, if it runs (for monitoring and tests)."""
        proc = self._proc
        return [proc.pid] if proc is not None and proc.pid and proc.is_alive() else []

    async def aclose(self) -> None:
        """Close the worker's socket (it exits after its current job) and wait for it."""
        proc, writer, replies = self._proc, self._writer, self._replies
        self._proc = self._writer = self._replies = None
        if writer is not None:
            writer.close()
        if proc is not None:
            await asyncio.to_thread(proc.join, 10)
            if proc.is_alive():
                proc.kill()
                await asyncio.to_thread(proc.join, 5)
        if replies is not None:
            replies.cancel()
            await asyncio.gather(replies, return_exceptions=True)
