"""Servers and a delaying proxy for the benchmarks, each in its own process."""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager

HERE = os.path.dirname(os.path.abspath(__file__))


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_for_port(port: int, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), 0.2):
                return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"nothing listens on port {port}")


class ServerProcess:
    """A server in a child process; `stats()` ends it and returns what it counted (for the
    embedded server: reads and messages, so round trips per message can be computed)."""

    def __init__(self, kind: str, features: str = "all") -> None:
        self.kind = kind
        self.port = free_port()
        if kind == "smtp-sink":
            sink = shutil.which("smtp-sink") or "/usr/sbin/smtp-sink"
            command = [sink, "-u", "nobody", f"127.0.0.1:{self.port}", "256"]
        elif kind == "embedded":
            command = [sys.executable, os.path.join(HERE, "helpers.py"), "embedded",
                       str(self.port), features]
        else:
            raise ValueError(kind)
        self.proc = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                                     text=True)
        wait_for_port(self.port)

    def stats(self) -> dict[str, int]:
        self.proc.send_signal(signal.SIGTERM)
        out, _ = self.proc.communicate(timeout=10)
        try:
            return dict(json.loads(out.strip().splitlines()[-1]))
        except (ValueError, IndexError):
            return {}

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                self.proc.kill()


@contextmanager
def server(kind: str, features: str = "all") -> Iterator[ServerProcess]:
    proc = ServerProcess(kind, features)
    try:
        yield proc
    finally:
        proc.stop()


class DelayProxy:
    """A TCP proxy in a child process: client to server at once, every server-to-client
    chunk delayed by `delay` seconds (order kept), which makes each reply cost a round trip
    of at least that much, like a network path."""

    def __init__(self, target_port: int, delay: float = 0.005) -> None:
        self.port = free_port()
        self.proc = subprocess.Popen(
            [sys.executable, os.path.join(HERE, "helpers.py"), "proxy", str(self.port),
             str(target_port), str(delay)],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )
        wait_for_port(self.port)

    def stop(self) -> None:
        self.proc.terminate()
        self.proc.wait(5)


@contextmanager
def delay_proxy(target_port: int, delay: float = 0.005) -> Iterator[DelayProxy]:
    proxy = DelayProxy(target_port, delay)
    try:
        yield proxy
    finally:
        proxy.stop()


# -- the child processes -------------------------------------------------------------------------


def _run_embedded(port: int, features: str) -> None:
    sys.path.insert(0, os.path.dirname(HERE))
    from ipsmtp.server import Server

    chosen = Server.ALL_FEATURES if features == "all" else [
        f for f in features.split(",") if f]
    server = Server(port=port, features=chosen, record_wire=False,
                    data_size_limit=256 * 1024 * 1024)
    server.start()
    done = asyncio.Event()

    def report(*_: object) -> None:
        sessions = server.sessions
        print(json.dumps({
            "messages": len(server.messages),
            "reads": sum(len(s.reads) for s in sessions),
            "sessions": len(sessions),
        }), flush=True)
        server.stop()
        os._exit(0)

    signal.signal(signal.SIGTERM, report)
    while not done.is_set():
        time.sleep(1)
        server.messages.clear()  # keep memory flat; counts come from the reads


def _run_proxy(port: int, target: int, delay: float) -> None:
    async def pipe_up(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while data := await reader.read(65536):
            writer.write(data)
            await writer.drain()
        writer.close()

    async def pipe_down(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        loop = asyncio.get_running_loop()
        while data := await reader.read(65536):
            loop.call_later(delay, writer.write, data)
        loop.call_later(delay, writer.close)

    async def handle(client_r: asyncio.StreamReader, client_w: asyncio.StreamWriter) -> None:
        server_r, server_w = await asyncio.open_connection("127.0.0.1", target)
        await asyncio.gather(pipe_up(client_r, server_w), pipe_down(server_r, client_w),
                             return_exceptions=True)

    async def main() -> None:
        server = await asyncio.start_server(handle, "127.0.0.1", port)
        async with server:
            await server.serve_forever()

    asyncio.run(main())


if __name__ == "__main__":
    if sys.argv[1] == "embedded":
        _run_embedded(int(sys.argv[2]), sys.argv[3])
    elif sys.argv[1] == "proxy":
        _run_proxy(int(sys.argv[2]), int(sys.argv[3]), float(sys.argv[4]))
