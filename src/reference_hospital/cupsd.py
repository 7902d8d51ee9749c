"""A private CUPS scheduler's folder: its two configuration files and its last error.

Why: the reference hospital's print server (print_server.py) and the tests' stoppable CUPS
peer (tests/cups_peer.py) both run ``cupsd -f -c cupsd.conf -s cups-files.conf`` from a
folder of their own, as CUPS' own test suite does (``test/run-stp-tests.sh``): every folder
it writes under that root, never /etc, no browsing or DNS-SD, no authentication (loopback
only). What CUPS 2.4.2 accepts there was learnt once; it is written once, here.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from pathlib import Path

CUPS_DATA = Path("/usr/share/cups")
CUPS_SERVER_BIN = Path("/usr/lib/cups")
FOLDERS = ("spool/temp", "cache", "state", "log", "ppd")


def write_config(
    root: Path,
    listen: Iterable[str],
    *,
    log_level: str = "warn",
    extra_files_directives: Sequence[str] = (),
) -> tuple[Path, Path]:
    """Write ``cupsd.conf`` and ``cups-files.conf`` for a cupsd kept under ``root``.

    ``root`` must be absolute (cupsd refuses relative configuration paths); ``listen`` is
    each ``host:port`` to bind, an IPv6 host in brackets. Returns both paths, for ``-c``/``-s``.
    """
    for sub in FOLDERS:
        (root / sub).mkdir(parents=True, exist_ok=True)
    cupsd_conf = root / "cupsd.conf"
    cupsd_conf.write_text(
        "\n".join(
            [
                f"LogLevel {log_level}",
                *(f"Listen {address}" for address in listen),
                "Browsing No",
                "BrowseLocalProtocols none",
                "DefaultShared No",
                "WebInterface No",
                "DefaultAuthType None",
                "<Location />",
                "  Order allow,deny",
                "  Allow 127.0.0.1",
                "  Allow ::1",
                "</Location>",
                "<Policy default>",
                "  <Limit All>",
                "    Order deny,allow",
                "  </Limit>",
                "</Policy>",
                "",
            ]
        ),
        encoding="utf-8",
    )
    files_conf = root / "cups-files.conf"
    files_conf.write_text(
        "\n".join(
            [
                "FileDevice Yes",  # queues may print to file:///dev/null
                # every directive has a value: cupsd 2.4.2-3+deb12u10 refuses a bare one
                f"Printcap {root / 'printcap'}",  # never /etc/printcap
                f"ServerRoot {root}",
                f"RequestRoot {root / 'spool'}",
                f"TempDir {root / 'spool' / 'temp'}",
                f"CacheDir {root / 'cache'}",
                f"StateDir {root / 'state'}",
                f"DataDir {CUPS_DATA}",
                f"ServerBin {CUPS_SERVER_BIN}",
                f"AccessLog {root / 'log' / 'access_log'}",
                f"ErrorLog {root / 'log' / 'error_log'}",
                f"PageLog {root / 'log' / 'page_log'}",
                *extra_files_directives,
                "",
            ]
        ),
        encoding="utf-8",
    )
    return cupsd_conf, files_conf


def last_error(root: Path) -> str:
    """The scheduler's last error line (``E [...] ...``), else the last line it wrote.

    Its own stdout/stderr is expected in ``root/cupsd.out``: a configuration it refuses
    shows only there, since it stops before opening its error log.
    """
    lines: list[str] = []
    for path in (root / "log" / "error_log", root / "cupsd.out"):
        try:
            lines += path.read_text(encoding="utf-8", errors="replace").splitlines()
        except OSError:
            continue
    errors = [line for line in lines if line.startswith("E ") and "banner" not in line.lower()]
    return (errors or lines or ["no log written"])[-1].strip()


__all__ = ["CUPS_DATA", "CUPS_SERVER_BIN", "last_error", "write_config"]
