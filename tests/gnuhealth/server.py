"""GNU Health for the tests: a PostgreSQL cluster of our own, the initialised database, trytond + SAO.

Everything is private to one test session and dies with it: the cluster lives in a tmp folder
(its socket there too, TCP off, on a port from ``free_port()`` that only names the socket, never
5432), ``postgres`` and ``trytond`` are children with a parent-death signal
(:func:`rehearsal.lifetime.die_with_parent`), trytond listens on 127.0.0.1 and a free port.

Initialising GNU Health (``trytond-admin --all -u health health_lab``) takes about a minute, so it is
done once per installed version and dumped (``.venv-gnuhealth/gnuhealth-<stamp>.dump``); a session
restores the dump (~2.5 s with the start). ``python -m tests.gnuhealth.server prepare`` builds the
dump (scripts/setup_gnuhealth.sh calls it), so the first test session does not pay for it.

As root (CI) the cluster runs as the Debian ``postgres`` user (PostgreSQL refuses root); otherwise
as the user running the tests.
"""

from __future__ import annotations

import fcntl
import os
import pwd
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx

from rehearsal.lifetime import die_with_parent
from tests.conftest import ROOT, free_port

VENV = ROOT / ".venv-gnuhealth"
SAO = VENV / "sao"
SETUP_ERROR = VENV / "setup-error"
STAMP = VENV / ".setup-stamp"
DB = "health"
ADMIN = "admin"
START_S = 60.0


class NotSetUp(RuntimeError):
    """GNU Health cannot run here; the message is one line naming what is missing."""


def setup_problem() -> str | None:
    """Why GNU Health cannot be started on this machine (one line), or None when it can."""
    if SETUP_ERROR.is_file():
        return SETUP_ERROR.read_text(encoding="utf-8").strip()
    for need, what in (
        (VENV / "bin" / "trytond", "trytond"),
        (SAO / "index.html", "SAO (the web client)"),
        (SAO / "bower_components" / "jquery", "SAO's libraries"),
    ):
        if not need.exists():
            return (
                f"GNU Health is not set up ({what} missing in {need.parent}): run scripts/setup_gnuhealth.sh"
            )
    if not _pg_bin():
        return "no PostgreSQL server programs under /usr/lib/postgresql: apt-get install postgresql"
    return None


def _pg_bin() -> Path | None:
    found = sorted(Path("/usr/lib/postgresql").glob("*/bin/initdb"))
    return found[-1].parent if found else None


def _as_postgres() -> dict[str, object]:
    """Popen arguments that drop to the Debian ``postgres`` user when we are root."""
    if os.geteuid() != 0:
        return {}
    pw = pwd.getpwnam("postgres")
    return {"user": pw.pw_uid, "group": pw.pw_gid, "extra_groups": []}


def dump_path() -> Path:
    stamp = STAMP.read_text(encoding="utf-8").strip()[:16] if STAMP.is_file() else "unstamped"
    return VENV / f"gnuhealth-{stamp}.dump"


@dataclass
class Cluster:
    """A running PostgreSQL cluster of our own: its folder, socket folder and port."""

    folder: Path
    port: int
    proc: subprocess.Popen[bytes]

    @property
    def uri(self) -> str:
        """trytond's ``[database] uri``: the superuser over the private socket (trust, socket only)."""
        return f"postgresql://postgres@/?host={self.folder}&port={self.port}"

    def run(self, *args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
        """A PostgreSQL client program (createdb, pg_dump, pg_restore …) against this cluster."""
        cmd = [
            str(_pg_bin() / args[0]),
            "-h",
            str(self.folder),
            "-p",
            str(self.port),
            "-U",
            "postgres",
            *args[1:],
        ]
        done = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
        if done.returncode:
            raise NotSetUp(f"{args[0]} failed: {(done.stderr or done.stdout).strip().splitlines()[-1:]}")
        return done

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGQUIT)  # immediate shutdown: the data is thrown away
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


@contextmanager
def cluster() -> Iterator[Cluster]:
    """initdb + postgres in a tmp folder of its own, socket only, dies with us; removed afterwards.

    The folder is made in the system's tmp (not pytest's, which only its owner may enter) so the
    ``postgres`` user can reach it when we are root.
    """
    pg = _pg_bin()
    if pg is None:
        raise NotSetUp("no PostgreSQL server programs under /usr/lib/postgresql: apt-get install postgresql")
    folder = Path(tempfile.mkdtemp(prefix="gnuhealth-pg-"))
    drop = _as_postgres()
    if drop:
        os.chown(folder, int(drop["user"]), int(drop["group"]))  # type: ignore[call-overload]
    data = folder / "data"
    init = subprocess.run(
        [
            str(pg / "initdb"),
            "-D",
            str(data),
            "-U",
            "postgres",
            "--auth=trust",
            "-E",
            "UTF8",
            "--locale=C.UTF-8",
        ],
        capture_output=True,
        text=True,
        timeout=120,
        **drop,  # type: ignore[arg-type]
    )
    if init.returncode:
        raise NotSetUp(f"initdb failed: {init.stderr.strip().splitlines()[-1:]}")
    port = free_port()
    log = open(folder / "postgres.log", "wb")  # noqa: SIM115 (kept open for the child)
    proc = subprocess.Popen(
        [
            str(pg / "postgres"),
            "-D",
            str(data),
            "-p",
            str(port),
            "-k",
            str(folder),
            "-c",
            "listen_addresses=",
            "-c",
            "fsync=off",
            "-c",
            "full_page_writes=off",
            "-c",
            "synchronous_commit=off",
        ],
        stdout=log,
        stderr=subprocess.STDOUT,
        preexec_fn=die_with_parent(signal.SIGQUIT),
        **drop,  # type: ignore[arg-type]
    )
    running = Cluster(folder, port, proc)
    try:
        deadline = time.monotonic() + 30
        while not (folder / f".s.PGSQL.{port}").exists():
            if proc.poll() is not None or time.monotonic() > deadline:
                raise NotSetUp(f"postgres did not start: {(folder / 'postgres.log').read_text()[-300:]!r}")
            time.sleep(0.05)
        ready = pg / "pg_isready"
        while subprocess.run([str(ready), "-q", "-h", str(folder), "-p", str(port)]).returncode:
            if time.monotonic() > deadline:
                raise NotSetUp("postgres did not accept connections within 30 s")
            time.sleep(0.05)
        yield running
    finally:
        running.stop()
        log.close()
        shutil.rmtree(folder, ignore_errors=True)


def write_conf(folder: Path, db: Cluster, port: int) -> Path:
    conf = folder / "trytond.conf"
    (folder / "filestore").mkdir(exist_ok=True)
    conf.write_text(
        "[database]\n"
        f"uri = {db.uri}\n"
        f"path = {folder / 'filestore'}\n"
        "[web]\n"
        f"listen = 127.0.0.1:{port}\n"
        f"root = {SAO}\n"
        "[session]\n"
        "timeout = 3600\n",
        encoding="utf-8",
    )
    return conf


def initialise(db: Cluster, folder: Path, admin_password: str) -> None:
    """createdb + trytond-admin --all -u health health_lab (about a minute): GNU Health's own set-up."""
    db.run("createdb", "-E", "UTF8", "-T", "template0", DB)
    conf = write_conf(folder, db, free_port())
    passfile = folder / "admin.pass"
    passfile.write_text(admin_password, encoding="utf-8")
    passfile.chmod(0o600)
    env = {**os.environ, "TRYTONPASSFILE": str(passfile)}
    done = subprocess.run(
        [
            str(VENV / "bin" / "trytond-admin"),
            "-c",
            str(conf),
            "-d",
            DB,
            "--all",
            "-u",
            "health",
            "health_lab",
            "--activate-dependencies",
            "--email",
            "admin@example.org",
        ],
        capture_output=True,
        text=True,
        env=env,
        timeout=900,
        preexec_fn=die_with_parent(),
    )
    passfile.unlink()
    if done.returncode:
        raise NotSetUp(f"trytond-admin failed: {(done.stderr or done.stdout).strip().splitlines()[-1:]}")


def _admin_password_file() -> Path:
    return dump_path().with_suffix(".admin")


@contextmanager
def _dump_lock() -> Iterator[None]:
    VENV.mkdir(exist_ok=True)
    with open(VENV / ".dump.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # two sessions preparing at once build it once
        yield


def prepare(parent: Path) -> Path:
    """The dump of an initialised GNU Health database, built now if missing."""
    if problem := setup_problem():
        raise NotSetUp(problem)
    with _dump_lock():
        target = dump_path()
        if target.is_file() and _admin_password_file().is_file():
            return target
        password = os.urandom(12).hex()  # a throwaway database's admin; replaced per session (seed)
        with tempfile.TemporaryDirectory(dir=parent) as tmp, cluster() as db:
            initialise(db, Path(tmp), password)
            db.run("pg_dump", "-Fc", "-f", f"{tmp}/db.dump", DB)
            shutil.copy(f"{tmp}/db.dump", f"{target}.part")
        _admin_password_file().write_text(password, encoding="utf-8")
        _admin_password_file().chmod(0o600)
        os.replace(f"{target}.part", target)
        return target


@dataclass
class GnuHealth:
    """A running GNU Health: its web client's base URL, database name, admin credentials."""

    base: str
    database: str
    admin_password: str
    proc: subprocess.Popen[bytes]
    log: Path

    @property
    def web(self) -> str:
        """The address a clinician opens: SAO with the database filled in."""
        return f"{self.base}/#{self.database}"


@contextmanager
def running(parent: Path) -> Iterator[GnuHealth]:
    """GNU Health restored from the dump and serving on 127.0.0.1 (SAO at ``/``, JSON-RPC at ``/DB/``)."""
    dump = prepare(parent)
    with cluster() as db:
        db.run("createdb", "-E", "UTF8", "-T", "template0", DB)
        # pg_restore reports harmless warnings (owner, extension comments) with status 1 on some dumps
        subprocess.run(
            [
                str(_pg_bin() / "pg_restore"),
                "-h",
                str(db.folder),
                "-p",
                str(db.port),
                "-U",
                "postgres",
                "-d",
                DB,
                "--no-owner",
                str(dump),
            ],
            capture_output=True,
            timeout=300,
        )
        port = free_port()
        folder = Path(tempfile.mkdtemp(prefix="trytond-", dir=parent))
        conf = write_conf(folder, db, port)
        log = folder / "trytond.log"
        with open(log, "wb") as out:
            proc = subprocess.Popen(
                [str(VENV / "bin" / "trytond"), "-c", str(conf)],
                stdout=out,
                stderr=subprocess.STDOUT,
                preexec_fn=die_with_parent(signal.SIGTERM),
            )
        base = f"http://127.0.0.1:{port}"
        server = GnuHealth(base, DB, _admin_password_file().read_text(encoding="utf-8"), proc, log)
        try:
            _wait_listening(server)
            yield server
        finally:
            if proc.poll() is None:
                proc.terminate()
                try:
                    proc.wait(timeout=10)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait()


def _wait_listening(server: GnuHealth) -> None:
    deadline = time.monotonic() + START_S
    while True:
        if server.proc.poll() is not None:
            raise NotSetUp(f"trytond exited: {server.log.read_text(errors='replace')[-400:]!r}")
        try:
            if httpx.get(f"{server.base}/", timeout=2).status_code < 500:
                return
        except httpx.HTTPError:
            pass
        if time.monotonic() > deadline:
            raise NotSetUp(f"trytond did not answer on {server.base} within {START_S:g} s")
        time.sleep(0.1)


def main(argv: list[str]) -> int:
    if argv[1:] != ["prepare"]:
        print("usage: python -m tests.gnuhealth.server prepare", file=sys.stderr)
        return 2
    try:
        started = time.monotonic()
        path = prepare(Path(tempfile.gettempdir()))
    except (NotSetUp, subprocess.TimeoutExpired, OSError) as exc:
        print(f"GNU Health database: {exc}", file=sys.stderr)
        return 1
    print(f"GNU Health database ready: {path} ({time.monotonic() - started:.0f} s)", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
