"""A minimal SOCKS4 / SOCKS4a proxy, run as its own process by the proxy tests (pproxy, the
proxy used for the other kinds, does not implement SOCKS4a's remote name resolution).

    python socks4_server.py PORT

It answers CONNECT only, prints ``CONNECT <host>:<port> user=<userid>`` for each request (the
host as the client sent it: a name for 4a, an address for 4), and relays bytes both ways.
"""

from __future__ import annotations

import asyncio
import socket
import struct
import sys


async def relay(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        while data := await reader.read(65536):
            writer.write(data)
            await writer.drain()
    finally:
        writer.close()


async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        version, command, port = struct.unpack("!BBH", await reader.readexactly(4))
        address = await reader.readexactly(4)
        user = (await reader.readuntil(b"\0"))[:-1].decode()
        if version != 4 or command != 1:
            writer.close()
            return
        if address[:3] == b"\0\0\0" and address[3] != 0:  # SOCKS4a: the name follows
            host = (await reader.readuntil(b"\0"))[:-1].decode()
        else:
            host = socket.inet_ntoa(address)
        print(f"CONNECT {host}:{port} user={user}", flush=True)
        try:
            up_reader, up_writer = await asyncio.open_connection(host, port)
        except OSError:
            writer.write(b"\0\x5b" + b"\0" * 6)  # request rejected or failed
            await writer.drain()
            writer.close()
            return
        writer.write(b"\0\x5a" + b"\0" * 6)  # request granted
        await writer.drain()
        await asyncio.gather(relay(reader, up_writer), relay(up_reader, writer),
                             return_exceptions=True)
    except (asyncio.IncompleteReadError, ConnectionError):
        writer.close()


async def main(port: int) -> None:
    server = await asyncio.start_server(handle, "127.0.0.1", port)
    print(f"listening on {port}", flush=True)
    async with server:
        await server.serve_forever()


if __name__ == "__main__":
    asyncio.run(main(int(sys.argv[1])))
