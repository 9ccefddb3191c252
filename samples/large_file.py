"""Send a large message file in bounded memory, with a progress display.

`send_file()` streams the file: it is read, normalised and dot-stuffed a chunk at a time, so
the message size does not matter. The `transfer` signal reports progress.
"""

import os
import sys
import tempfile

from ipsmtp import SMTP, signals
from ipsmtp.server import Server

with tempfile.TemporaryDirectory() as directory:
    path = os.path.join(directory, "big.eml")
    with open(path, "wb") as f:  # a 20 MB message
        f.write(b"From: a@example.com\r\nTo: b@example.com\r\nSubject: big one\r\n\r\n")
        line = b"All work and no play makes Jack a dull boy. 0123456789\r\n"
        while f.tell() < 20 * 1024 * 1024:
            f.write(line * 1000)

    last = [-1]

    def progress(sender: object, bytes_transferred: int, percent_done: int, **kw: object) -> None:
        if percent_done // 10 != last[0] // 10 or percent_done == 100:
            sys.stdout.write(f"\r{percent_done:3d}%  {bytes_transferred / 1e6:6.1f} MB")
            sys.stdout.flush()
            last[0] = percent_done

    with Server(
        features=["PIPELINING", "CHUNKING"], record_wire=False, data_size_limit=64 * 1024 * 1024
    ) as server:
        smtp = SMTP(mail_server=server.host, mail_port=server.port)
        signals.transfer.connect(progress, sender=smtp)
        result = smtp.send_file(path)
        print(f"\nserver: {result.reply}")
        received = server.messages[0]
        print(f"received {len(received.data):,} bytes in {len(received.bdat_sizes)} BDAT chunks")
        assert len(received.data) == os.path.getsize(path)
