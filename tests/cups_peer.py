"""A private CUPS scheduler on loopback, as a real IPP peer whose queues can be stopped.

Why: ippeveprinter (our simulated printer) never reports ``printer-state`` stopped nor
``printer-is-accepting-jobs`` false, so the IPP probe's reading of those two conditions
needs another real peer. CUPS' own scheduler reports both, on command, for any queue, and
runs happily as an ordinary user from a temporary folder: that is how CUPS' own test suite
(``test/run-stp-tests.sh``) runs it. Here it listens on ``127.0.0.1:<free port>`` only, with
every folder (server root, spool, cache, state, logs) under one working directory, no
browsing or DNS-SD, and no authentication (loopback only), so the harness's tests can pause,
resume, reject and accept a queue with CUPS' own administration programs (Debian
``cups-client``), or set any ``printer-state-reasons`` keyword (suffixes included) with
``ipptool`` (Debian ``cups-ipp-utils``) through CUPS-Add-Modify-Printer.

    with CupsPeer(tmp_path) as cups:
        uri = cups.add_queue("ward1")      # ipp://127.0.0.1:<port>/printers/ward1, idle, accepting
        cups.pause("ward1", "toner change")
        cups.resume("ward1")
        cups.reject("ward1"); cups.accept("ward1")
        cups.set_reasons("ward1", ["cover-open-error"])

Test-only: nothing in ``src/`` uses it; its configuration is the reference hospital's
(``reference_hospital.cupsd``, shared with the print server).
"""

from __future__ import annotations

import shutil
import socket
import subprocess
import time
from collections.abc import Sequence
from pathlib import Path
from types import TracebackType

from conftest import free_port
from reference_hospital import cupsd
from rehearsal.lifetime import end_process

CUPSD = "/usr/sbin/cupsd"
CLIENT_PROGRAMS = ("lpadmin", "cupsenable", "cupsdisable", "cupsaccept", "cupsreject", "ipptool")
HOW_TO_INSTALL = (
    "install the Debian packages cups-daemon, cups-client and cups-ipp-utils (scripts/setup.sh does)"
)


class CupsPeerError(RuntimeError):
    """The private scheduler could not start, or refused an administration command."""


def _program(name: str) -> str:
    found = shutil.which(name, path="/usr/sbin:/usr/bin:/sbin:/bin")
    if found is None:
        raise CupsPeerError(f"{name} not found: {HOW_TO_INSTALL}")
    return found


class CupsPeer:
    """One private ``cupsd -f`` on 127.0.0.1; a context manager that always stops it.

    ``workdir`` receives ``cupsd.conf``, ``cups-files.conf`` and every folder the scheduler
    writes (``log/error_log`` is the place to look when something goes wrong).
    """

    def __init__(
        self,
        workdir: Path,
        *,
        port: int | None = None,
        start_timeout: float = 10.0,
        extra_files_directives: Sequence[str] = (),
    ) -> None:
        self.workdir = Path(workdir).resolve()  # cupsd refuses relative configuration paths
        self.port = port or free_port()
        self.start_timeout = start_timeout
        self.extra_files_directives = tuple(extra_files_directives)
        self.server = f"127.0.0.1:{self.port}"
        self._proc: subprocess.Popen[bytes] | None = None

    # -- life cycle ---------------------------------------------------------------------

    def _write_config(self) -> tuple[Path, Path]:
        return cupsd.write_config(
            self.workdir,
            [self.server],
            log_level="debug",
            extra_files_directives=self.extra_files_directives,
        )

    def _check_config(self, cupsd_conf: Path, files_conf: Path) -> None:
        """``cupsd -t``: a configuration a stricter CUPS release refuses fails here, in its words.

        Without it a refused configuration shows only as "exited with status 1: no log
        written", since cupsd stops before it opens its error log.
        """
        done = subprocess.run(
            [CUPSD, "-t", "-c", str(cupsd_conf), "-s", str(files_conf)],
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            timeout=self.start_timeout,
            check=False,
        )
        if done.returncode != 0:
            said = [
                line.strip()
                for line in (done.stderr + "\n" + done.stdout).splitlines()
                if line.strip() and "banner" not in line
            ]
            raise CupsPeerError(
                f"private cupsd refused its configuration (cupsd -t, status {done.returncode}): "
                + " | ".join(said or ["no message"])
            )

    def start(self) -> None:
        """Start the scheduler in the foreground and return once it accepts connections."""
        if self._proc is not None:
            return
        for name in CLIENT_PROGRAMS:
            _program(name)
        if not Path(CUPSD).exists():
            raise CupsPeerError(f"{CUPSD} not found: {HOW_TO_INSTALL}")
        cupsd_conf, files_conf = self._write_config()
        self._check_config(cupsd_conf, files_conf)
        self._output = open(self.workdir / "cupsd.out", "wb")  # closed in stop()
        self._proc = subprocess.Popen(
            [CUPSD, "-f", "-c", str(cupsd_conf), "-s", str(files_conf)],
            stdin=subprocess.DEVNULL,
            stdout=self._output,
            stderr=subprocess.STDOUT,
        )
        deadline = time.monotonic() + self.start_timeout
        try:
            while True:
                if self._proc.poll() is not None:
                    raise CupsPeerError(
                        f"private cupsd exited with status {self._proc.returncode}: {self.last_error()}"
                    )
                try:
                    with socket.create_connection(("127.0.0.1", self.port), timeout=0.5):
                        return
                except OSError:
                    pass
                if time.monotonic() > deadline:
                    raise CupsPeerError(
                        f"private cupsd not listening on {self.server} after {self.start_timeout:g} s: "
                        f"{self.last_error()}"
                    )
                time.sleep(0.05)
        except BaseException:
            self.stop()
            raise

    def stop(self) -> None:
        """SIGTERM, then SIGKILL after 5 s; safe to call twice or after a failed start."""
        proc, self._proc = self._proc, None
        if proc is None:
            return
        end_process(proc, 5.0)
        self._output.close()

    def __enter__(self) -> CupsPeer:
        self.start()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    @property
    def running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    def last_error(self) -> str:
        """The scheduler's last error line (``E [...] ...``), or its last output line."""
        return cupsd.last_error(self.workdir)

    # -- queues -------------------------------------------------------------------------

    def uri(self, queue: str) -> str:
        return f"ipp://127.0.0.1:{self.port}/printers/{queue}"

    def _run(self, program: str, *args: str) -> str:
        if not self.running:
            raise CupsPeerError(f"private cupsd on {self.server} is not running: {self.last_error()}")
        done = subprocess.run(
            [_program(program), *args], capture_output=True, text=True, timeout=10.0, check=False
        )
        if done.returncode != 0:
            raise CupsPeerError(
                f"{program} {' '.join(args)} failed ({done.returncode}): "
                f"{(done.stderr or done.stdout).strip()}"
            )
        return done.stdout

    def add_queue(self, queue: str, device_uri: str = "file:///dev/null") -> str:
        """A raw queue (no driver), enabled and accepting; returns its IPP URI."""
        self._run("lpadmin", "-h", self.server, "-p", queue, "-E", "-v", device_uri)
        return self.uri(queue)

    def pause(self, queue: str, reason: str = "") -> None:
        """``cupsdisable``: printer-state stopped, reason ``paused``, the message is ``reason``."""
        self._run("cupsdisable", "-h", self.server, *(["-r", reason] if reason else []), queue)

    def resume(self, queue: str) -> None:
        """``cupsenable``: back to idle, ``paused`` removed."""
        self._run("cupsenable", "-h", self.server, queue)

    def reject(self, queue: str, reason: str = "") -> None:
        """``cupsreject``: printer-is-accepting-jobs false."""
        self._run("cupsreject", "-h", self.server, *(["-r", reason] if reason else []), queue)

    def accept(self, queue: str) -> None:
        """``cupsaccept``: printer-is-accepting-jobs true."""
        self._run("cupsaccept", "-h", self.server, queue)

    def set_reasons(self, queue: str, reasons: Sequence[str]) -> None:
        """Replace the queue's printer-state-reasons (``[]`` → ``none``), suffixes kept as given.

        CUPS-Add-Modify-Printer accepts ``printer-state-reasons`` from an administrator, so
        ``ipptool`` sends one with exactly these keywords (one value each).
        """
        values = list(reasons) or ["none"]
        for value in values:
            if not value or any(c in value for c in ', "\\\n{}$'):
                raise ValueError(f"not a plain keyword: {value!r}")
        test = self.workdir / f"set-reasons-{queue}.test"
        test.write_text(
            "{\n"
            '  NAME "set printer-state-reasons"\n'
            "  OPERATION CUPS-Add-Modify-Printer\n"
            "  GROUP operation-attributes-tag\n"
            "  ATTR charset attributes-charset utf-8\n"
            "  ATTR naturalLanguage attributes-natural-language en\n"
            "  ATTR uri printer-uri $uri\n"
            "  ATTR name requesting-user-name rehearsal\n"
            "  GROUP printer-attributes-tag\n"
            f"  ATTR keyword printer-state-reasons {','.join(values)}\n"
            "  STATUS successful-ok\n"
            "}\n",
            encoding="utf-8",
        )
        self._run("ipptool", "-t", self.uri(queue), str(test))


__all__ = ["CupsPeer", "CupsPeerError"]
