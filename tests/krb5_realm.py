"""A throwaway Kerberos realm with a real MIT KDC (Debian's krb5-kdc), for the GSSAPI tests.

`Realm.start()` writes a krb5.conf and kdc.conf under a temporary directory, creates the
database with ``kdb5_util``, adds principals with ``kadmin.local``, exports the SMTP service
key to a keytab, and runs ``krb5kdc`` in the foreground on a free TCP port of 127.0.0.1. The
process environment points the Kerberos library at that realm (KRB5_CONFIG, KRB5CCNAME) for
as long as the realm runs, since client and server run in the test process.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import time
from pathlib import Path

REALM = "IPSMTP.TEST"
TOOLS = ("kdb5_util", "kadmin.local", "krb5kdc", "kinit")


def missing_tools() -> list[str]:
    return [tool for tool in TOOLS if shutil.which(tool) is None]


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


class Realm:
    def __init__(self, directory: Path, realm: str = REALM) -> None:
        self.dir = directory
        self.realm = realm
        self.port = _free_port()
        self.keytab = str(directory / "smtp.keytab")
        self.other_keytab = str(directory / "other.keytab")
        self.ccache = f"FILE:{directory / 'ccache'}"
        self._kdc: subprocess.Popen[bytes] | None = None
        self._saved: dict[str, str | None] = {}
        self.env = dict(
            os.environ,
            KRB5_CONFIG=str(directory / "krb5.conf"),
            KRB5_KDC_PROFILE=str(directory / "kdc.conf"),
            KRB5CCNAME=self.ccache,
        )

    def start(self) -> Realm:
        self._write_config()
        self._run("kdb5_util", "create", "-s", "-r", self.realm, "-P", "master-key-pw")
        self.kadmin("addprinc -randkey smtp/localhost")
        self.kadmin(f"ktadd -k {self.keytab} smtp/localhost")
        self.kadmin("addprinc -randkey smtp/other.host")
        self.kadmin(f"ktadd -k {self.other_keytab} smtp/other.host")
        self._kdc = subprocess.Popen(
            ["krb5kdc", "-n", "-r", self.realm],
            env=self.env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        self._wait_for_kdc()
        for name in ("KRB5_CONFIG", "KRB5CCNAME"):
            self._saved[name] = os.environ.get(name)
            os.environ[name] = self.env[name]
        return self

    def stop(self) -> None:
        for name, value in self._saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value
        if self._kdc is not None:
            self._kdc.terminate()
            try:
                self._kdc.wait(10)
            except subprocess.TimeoutExpired:
                self._kdc.kill()
                self._kdc.wait(10)

    def add_user(self, name: str, password: str) -> str:
        self.kadmin(f"addprinc -pw {password} {name}")
        return f"{name}@{self.realm}"

    def kinit(self, name: str, password: str) -> None:
        """Put a ticket-granting ticket for `name` in the realm's credential cache."""
        subprocess.run(
            ["kinit", f"{name}@{self.realm}"],
            input=f"{password}\n".encode(),
            env=self.env,
            check=True,
            capture_output=True,
            timeout=20,
        )

    def kdestroy(self) -> None:
        subprocess.run(["kdestroy"], env=self.env, capture_output=True, timeout=20)

    def kadmin(self, query: str) -> None:
        self._run("kadmin.local", "-r", self.realm, "-q", query)

    def _run(self, *argv: str) -> None:
        done = subprocess.run(argv, env=self.env, capture_output=True, timeout=60)
        if done.returncode != 0:
            raise RuntimeError(f"{argv[0]} failed: {done.stderr.decode(errors='replace')}")

    def _write_config(self) -> None:
        (self.dir / "krb5.conf").write_text(
            f"""[libdefaults]
 default_realm = {self.realm}
 dns_lookup_kdc = false
 dns_lookup_realm = false
 dns_canonicalize_hostname = false
 rdns = false
 udp_preference_limit = 1
[realms]
 {self.realm} = {{
  kdc = 127.0.0.1:{self.port}
 }}
[domain_realm]
 localhost = {self.realm}
 other.host = {self.realm}
"""
        )
        (self.dir / "kdc.conf").write_text(
            f"""[kdcdefaults]
 kdc_listen = 127.0.0.1:{self.port}
 kdc_tcp_listen = 127.0.0.1:{self.port}
[realms]
 {self.realm} = {{
  database_name = {self.dir}/principal
  key_stash_file = {self.dir}/stash
  acl_file = {self.dir}/kadm5.acl
 }}
[logging]
 kdc = FILE:{self.dir}/kdc.log
"""
        )

    def _wait_for_kdc(self) -> None:
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            assert self._kdc is not None
            if self._kdc.poll() is not None:
                log = (self.dir / "kdc.log").read_text(errors="replace")
                raise RuntimeError(f"krb5kdc exited: {log[-2000:]}")
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.5):
                    return
            except OSError:
                time.sleep(0.05)
        raise RuntimeError("krb5kdc did not start listening within 10 s")
