"""Site probes: the device checks of a site run from inside its network, brought back as a bundle.

A site's printers are often reachable only from inside that site. The plan's ``probes:`` says
which probe machine covers which sites; the central run leaves those sites' devices to it
(the plugin does not generate them there), and ``rehearse probe --as NAME`` on the probe
machine runs ``hardware_checks/`` for its sites, every result labelled ``probe=NAME``, and
writes a **bundle**: plain files that travel by whatever the hospital allows (a share, a USB
stick), a folder or a zip of

    bundle.json                 probe, rehearsal, plan sha256, sites, the probe run's start and end,
                                its clock when bundled, address and host, sha256 of every other file
    allure-results/…            the probe run's results, containers and attachments (flat)
    hardware-readiness.{json,md}, pytest.log

``rehearse import BUNDLE… [--run RUN]`` checks every bundle before it takes any: it must be
whole (each file's sha256 as listed, nothing unlisted, names flat and plain, no links, sizes
bounded while reading, never trusting a zip's headers), of the run's rehearsal and plan hash,
from a probe the plan has and for its sites only, and not older than the run. It then copies
the results into the run's ``allure-results/`` (a name the run already has from elsewhere is
refused, never overwritten) and keeps the bundle's record under ``probes/NAME/``; a newer
bundle of the same probe replaces the older one. The go/no-go names per line who checked it
(:func:`rehearsal.gonogo.decide`), and a site whose probe never reported shows its lines as
"probe NAME did not report".

    probe_address(plan, probe, given)       -> str
    write_bundle(run, probe, out, address)  -> Path
    read_bundle(path, staging)              -> Bundle        (validated, staged; BundleError)
    import_bundles(run, plan, paths)        -> list[Bundle]
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import re
import secrets
import shutil
import socket
import stat
import zipfile
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, Any
from urllib.parse import urlsplit

from rehearsal import redact
from rehearsal.errors import UsageError
from rehearsal.plan import Plan, SiteProbe
from rehearsal.reports_folder import folder_error, write_atomic
from rehearsal.run import Run

FORMAT = "golive-rehearsal/site-probe-bundle/1"
MANIFEST = "bundle.json"
RESULTS = "allure-results"
PROBES_DIR = "probes"  # in a central run folder: probes/NAME/ the record of each imported bundle
IMPORTED = "imported.json"
EXTRA_FILES = ("hardware-readiness.json", "hardware-readiness.md", "pytest.log")
#: Bounds on what a bundle may hold, checked while reading (a zip's own sizes are not believed).
MAX_FILES = 20_000
MAX_FILE_BYTES = 64 << 20
MAX_TOTAL_BYTES = 512 << 20
MAX_MANIFEST_BYTES = 4 << 20
_PLAIN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,199}$")
_CHUNK = 1 << 16


class BundleError(UsageError):
    """A bundle refused: malformed, hostile, or not this run's; one line naming the bundle."""


@dataclass(frozen=True)
class Bundle:
    """A bundle read and checked for wholeness, its files staged in ``folder``."""

    source: Path
    folder: Path
    manifest: dict[str, Any]

    @property
    def probe(self) -> str:
        return str(self.manifest["probe"])

    @property
    def started(self) -> datetime:
        return _time(self.manifest["started"])

    @property
    def results(self) -> list[str]:
        """File names under allure-results/ (results, containers, attachments)."""
        return sorted(n.split("/", 1)[1] for n in self.manifest["files"] if n.startswith(RESULTS + "/"))


# --- the probe's side ---------------------------------------------------------------------------


def probe_address(plan: Plan, probe: SiteProbe, given: str | None) -> str:
    """The address the probe stands at: ``--address`` (which must be this machine's), else the
    plan's, else the one the kernel's route to its first device leaves from."""
    chosen = given or probe.address
    if chosen:
        try:
            with socket.socket(socket.AF_INET6 if ":" in chosen else socket.AF_INET, socket.SOCK_DGRAM) as s:
                s.bind((chosen, 0))
        except OSError as exc:
            raise UsageError(f"--address {chosen}: not an address of this machine ({exc.strerror})") from None
        return chosen
    for site in plan.sites:
        if site.id not in probe.sites:
            continue
        for printer in site.printers:
            host = urlsplit(printer.uri).hostname or (printer.snmp.host if printer.snmp else None)
            if not host:
                continue
            with contextlib.suppress(OSError), socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
                s.connect((host, 9))  # picks the route, sends nothing
                return str(s.getsockname()[0])
    return socket.gethostbyname(socket.gethostname()) if socket.gethostname() else "127.0.0.1"


def _files_of(run: Run) -> Iterator[tuple[str, Path]]:
    """(name in the bundle, file) of what a probe run recorded."""
    for path in sorted(run.results_dir.iterdir()) if run.results_dir.is_dir() else []:
        if path.is_file() and not path.is_symlink() and _PLAIN.match(path.name) and path.suffix != ".tmp":
            yield f"{RESULTS}/{path.name}", path
    for name in EXTRA_FILES:
        path = run.dir / name
        if path.is_file() and not path.is_symlink():
            yield name, path


def write_bundle(run: Run, probe: SiteProbe, out: Path, address: str, version: str = "") -> Path:
    """Write the probe run's bundle to ``out``: a zip when it ends in ``.zip``, else a folder.

    Whole or nothing: built beside ``out`` under a temporary name and renamed into place.
    """
    files = dict(_files_of(run))
    digests = {name: _sha256(path) for name, path in files.items()}
    manifest = {
        "format": FORMAT,
        "probe": probe.id,
        "rehearsal": run.rehearsal,
        "plan_sha256": run.plan_sha256,
        "sites": sorted(run.sites or probe.sites),
        "run": run.id,
        "started": run.started,
        "finished": run.finished,
        "complete": run.complete,
        "clock": datetime.now(UTC).isoformat(timespec="milliseconds"),
        "address": address,
        "host": socket.gethostname(),
        "version": version,
        "files": digests,
    }
    data = json.dumps(manifest, indent=2, ensure_ascii=False) + "\n"
    out = out.resolve()
    if out.exists() or out.is_symlink():
        raise UsageError(f"{out}: already exists; name another bundle (--bundle PATH)")
    tmp = out.with_name(f".{out.name}.{secrets.token_hex(3)}.tmp")
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        if out.suffix == ".zip":
            with zipfile.ZipFile(tmp, "w", compression=zipfile.ZIP_DEFLATED) as zf:
                zf.writestr(MANIFEST, data)
                for name, path in files.items():
                    zf.write(path, name)
        else:
            (tmp / RESULTS).mkdir(parents=True)
            (tmp / MANIFEST).write_text(data, encoding="utf-8")
            for name, path in files.items():
                shutil.copyfile(path, tmp / name)
        os.replace(tmp, out)
    except OSError as exc:
        _remove(tmp)
        raise folder_error(exc, out) from None
    return out


# --- reading a bundle: whole, plain, bounded ----------------------------------------------------


def _allowed(name: str) -> bool:
    if name in (MANIFEST, *EXTRA_FILES):
        return True
    head, slash, rest = name.partition("/")
    return head == RESULTS and bool(slash) and bool(_PLAIN.match(rest))


class _Budget:
    def __init__(self, source: Path) -> None:
        self.source, self.files, self.bytes = source, 0, 0

    def take(self, name: str) -> None:
        self.files += 1
        if self.files > MAX_FILES:
            raise BundleError(f"{self.source}: more than {MAX_FILES} files; not a probe bundle")
        if not _allowed(name):
            raise BundleError(
                f"{self.source}: holds {name!r}, which no probe bundle has (path outside the bundle, "
                "a subfolder or an unknown file); refused"
            )

    def copy(self, name: str, stream: IO[bytes], target: Path) -> None:
        """Copy at most the bounds' bytes, whatever the source says its size is."""
        limit = MAX_MANIFEST_BYTES if name == MANIFEST else MAX_FILE_BYTES
        size = 0
        with open(target, "xb") as out:
            while chunk := stream.read(_CHUNK):
                size += len(chunk)
                self.bytes += len(chunk)
                if size > limit:
                    raise BundleError(f"{self.source}: {name} is larger than {limit >> 20} MiB; refused")
                if self.bytes > MAX_TOTAL_BYTES:
                    raise BundleError(f"{self.source}: more than {MAX_TOTAL_BYTES >> 20} MiB in all; refused")
                out.write(chunk)


def _stage_zip(source: Path, staging: Path) -> None:
    budget = _Budget(source)
    try:
        with zipfile.ZipFile(source) as zf:
            infos = zf.infolist()
            if len(infos) > MAX_FILES:
                raise BundleError(f"{source}: more than {MAX_FILES} files; not a probe bundle")
            for info in infos:
                name = info.filename
                if info.is_dir() and name.rstrip("/") == RESULTS:
                    continue
                budget.take(name)
                if stat.S_ISLNK(info.external_attr >> 16):
                    raise BundleError(f"{source}: {name} is a symbolic link; refused")
                if info.file_size > MAX_FILE_BYTES:  # early, but the copy counts the real bytes too
                    raise BundleError(f"{source}: {name} is larger than {MAX_FILE_BYTES >> 20} MiB; refused")
                target = staging / name
                target.parent.mkdir(exist_ok=True)
                with zf.open(info) as stream:
                    budget.copy(name, stream, target)
    except FileExistsError:
        raise BundleError(f"{source}: a file is in it twice; refused") from None
    except (zipfile.BadZipFile, zipfile.LargeZipFile, NotImplementedError, EOFError, ValueError) as exc:
        raise BundleError(f"{source}: not a readable zip ({exc}); refused") from None


def _stage_folder(source: Path, staging: Path) -> None:
    budget = _Budget(source)

    def walk(folder: Path, prefix: str) -> Iterator[tuple[str, os.DirEntry[str]]]:
        with os.scandir(folder) as entries:
            for entry in entries:
                yield prefix + entry.name, entry

    for name, entry in walk(source, ""):
        if name == RESULTS and entry.is_dir(follow_symlinks=False):
            for inner, item in walk(Path(entry.path), RESULTS + "/"):
                _stage_entry(budget, inner, item, staging)
            continue
        _stage_entry(budget, name, entry, staging)


def _stage_entry(budget: _Budget, name: str, entry: os.DirEntry[str], staging: Path) -> None:
    budget.take(name)
    if not entry.is_file(follow_symlinks=False):
        raise BundleError(f"{budget.source}: {name} is not a plain file (a link or a folder); refused")
    target = staging / name
    target.parent.mkdir(exist_ok=True)
    fd = os.open(entry.path, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0))
    with os.fdopen(fd, "rb") as stream:
        budget.copy(name, stream, target)


def read_bundle(path: Path | str, staging: Path) -> Bundle:
    """Stage a bundle (zip or folder) into the empty folder ``staging`` and check it is whole."""
    source = Path(path)
    try:
        if source.is_dir():
            _stage_folder(source, staging)
        elif source.is_file():
            _stage_zip(source, staging)
        else:
            raise BundleError(f"{source}: no such bundle (a probe's .zip or folder)")
    except OSError as exc:
        raise BundleError(f"{source}: cannot be read ({exc.strerror or exc}); refused") from None
    try:
        manifest = json.loads((staging / MANIFEST).read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise BundleError(f"{source}: no {MANIFEST}; not a probe bundle") from None
    except (OSError, ValueError) as exc:
        raise BundleError(f"{source}: {MANIFEST} is not readable JSON ({exc}); refused") from None
    _check_manifest(source, manifest)
    listed = set(manifest["files"])
    present = {str(p.relative_to(staging)) for p in staging.rglob("*") if p.is_file() and p.name != MANIFEST}
    if present - listed:
        raise BundleError(f"{source}: {sorted(present - listed)[0]} is not listed in {MANIFEST}; refused")
    if listed - present:
        raise BundleError(f"{source}: {sorted(listed - present)[0]} is listed but missing; refused")
    for name, digest in manifest["files"].items():
        if _sha256(staging / name) != digest:
            raise BundleError(
                f"{source}: {name} differs from its sha256 in {MANIFEST} (altered or cut); refused"
            )
    return Bundle(source=source, folder=staging, manifest=manifest)


def _check_manifest(source: Path, m: Any) -> None:
    if not isinstance(m, dict) or m.get("format") != FORMAT:
        raise BundleError(f"{source}: {MANIFEST} is not a probe bundle's (format {FORMAT!r} expected)")
    for key in ("probe", "rehearsal", "plan_sha256", "run", "started", "clock", "address"):
        if not isinstance(m.get(key), str) or not m[key] or len(m[key]) > 200:
            raise BundleError(f"{source}: {MANIFEST}: {key} missing or not a short text; refused")
    sites, files = m.get("sites"), m.get("files")
    if not isinstance(sites, list) or not all(isinstance(s, str) for s in sites):
        raise BundleError(f"{source}: {MANIFEST}: sites is not a list of site ids; refused")
    if not isinstance(files, dict) or not all(
        isinstance(k, str) and _allowed(k) and k != MANIFEST and isinstance(v, str) and len(v) == 64
        for k, v in files.items()
    ):
        raise BundleError(f"{source}: {MANIFEST}: files is not a list of plain names with sha256; refused")
    for key in ("started", "clock"):
        try:
            _time(m[key])
        except ValueError:
            raise BundleError(f"{source}: {MANIFEST}: {key} is not a time ({m[key]!r}); refused") from None


# --- importing into a central run ---------------------------------------------------------------


def check_for_run(bundle: Bundle, run: Run, plan: Plan) -> None:
    """Refuse a bundle that is not this run's evidence: another rehearsal, another plan, an
    unknown probe or foreign sites, older than the run; results that claim what they are not."""
    m, where = bundle.manifest, bundle.source
    if m["rehearsal"] != run.rehearsal:
        raise BundleError(
            f"{where}: a bundle of rehearsal {m['rehearsal']!r}, "
            f"not of {run.rehearsal!r} (run {run.id}); refused"
        )
    if m["plan_sha256"] != run.plan_sha256:
        raise BundleError(
            f"{where}: made with another plan (sha256 {m['plan_sha256'][:12]}…) than run {run.id} "
            f"({run.plan_sha256[:12]}…); run the probe with the plan of this run; refused"
        )
    if bundle.started < _time(run.started):
        raise BundleError(
            f"{where}: probe {m['probe']} ran at {m['started']}, before run {run.id} started "
            f"({run.started}): an older bundle is not this run's evidence; refused"
        )
    probe = next((p for p in plan.probes if p.id == m["probe"]), None)
    if probe is None:
        known = ", ".join(p.id for p in plan.probes) or "none"
        raise BundleError(
            f"{where}: from probe {m['probe']!r}, which the plan has not (probes: {known}); refused"
        )
    foreign = sorted(set(m["sites"]) - set(probe.sites))
    if foreign:
        raise BundleError(
            f"{where}: probe {probe.id} reports site {foreign[0]!r}, not one of its sites; refused"
        )
    for name in bundle.results:
        if name.endswith("-result.json"):
            _check_result(bundle, name, probe, run)


def _check_result(bundle: Bundle, name: str, probe: SiteProbe, run: Run) -> None:
    where = f"{bundle.source}: {RESULTS}/{name}"
    try:
        data = json.loads((bundle.folder / RESULTS / name).read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise BundleError(f"{where}: not a readable result ({exc}); refused") from None
    labels = data.get("labels") if isinstance(data, dict) else None
    if not isinstance(labels, list):
        raise BundleError(f"{where}: not an Allure result (no labels); refused")
    values: dict[str, set[str]] = {}
    for label in labels:
        if isinstance(label, dict) and isinstance(label.get("name"), str):
            values.setdefault(label["name"], set()).add(str(label.get("value")))
    if values.get("probe") != {probe.id}:
        raise BundleError(f"{where}: not labelled as checked by probe {probe.id}; refused")
    if values.get("rehearsal", {run.rehearsal}) != {run.rehearsal}:
        raise BundleError(f"{where}: a result of another rehearsal; refused")
    stray = sorted(values.get("site", set()) - set(probe.sites))
    if stray:
        raise BundleError(
            f"{where}: a result for site {stray[0]!r}, which probe {probe.id} does not cover; refused"
        )


def import_bundles(run: Run, plan: Plan, paths: Sequence[Path | str]) -> list[Bundle]:
    """Check every bundle, then take them all into ``run`` (none when one is refused)."""
    if not paths:
        raise UsageError("rehearse import needs at least one bundle (a probe's .zip or folder)")
    probes_dir = run.dir / PROBES_DIR
    try:
        probes_dir.mkdir(exist_ok=True)
    except OSError as exc:
        raise folder_error(exc, probes_dir) from None
    stagings: list[Path] = []
    try:
        bundles: list[Bundle] = []
        for path in paths:
            staging = probes_dir / f".incoming-{secrets.token_hex(4)}"
            staging.mkdir()
            stagings.append(staging)
            bundle = read_bundle(path, staging)
            check_for_run(bundle, run, plan)
            bundles.append(bundle)
        names = [b.probe for b in bundles]
        twice = sorted({n for n in names if names.count(n) > 1})
        if twice:
            raise BundleError(f"two bundles of probe {twice[0]} given at once; import the newer one")
        for bundle in bundles:
            _check_against_imported(bundle, run)
        masks = redact.for_plan(plan)  # the probe redacted; this machine may know more passwords
        for bundle in bundles:
            _take(bundle, run, masks)
        return bundles
    finally:
        for staging in stagings:
            _remove(staging)


def imported(run: Run) -> dict[str, dict[str, Any]]:
    """Probe id → the record of its bundle imported into ``run`` (manifest, files, when, from where)."""
    found: dict[str, dict[str, Any]] = {}
    folder = run.dir / PROBES_DIR
    for record in sorted(folder.glob(f"*/{IMPORTED}")) if folder.is_dir() else []:
        with contextlib.suppress(OSError, ValueError):
            data = json.loads(record.read_text(encoding="utf-8"))
            if isinstance(data, dict):
                found[record.parent.name] = data
    return found


def _check_against_imported(bundle: Bundle, run: Run) -> None:
    before = imported(run).get(bundle.probe)
    mine = set(before["results"]) if before else set()
    if before is not None:
        earlier = before["manifest"]
        if _time(earlier["started"]) > bundle.started:
            raise BundleError(
                f"{bundle.source}: probe {bundle.probe} ran at {bundle.manifest['started']}, "
                f"before the bundle of it already imported ({earlier['started']}, "
                f"run {earlier['run']}); refused"
            )
    for name in bundle.results:
        if (run.results_dir / name).exists() and name not in mine:
            raise BundleError(
                f"{bundle.source}: {RESULTS}/{name} is already in run {run.id} from elsewhere; refused "
                "(a bundle never overwrites what the run recorded)"
            )


def _take(bundle: Bundle, run: Run, secrets: redact.Redactor) -> None:
    """Copy the results in (each file whole, redacted), then the record, then drop the older
    bundle's leftovers."""
    before = imported(run).get(bundle.probe)
    try:
        for name in bundle.results:
            write_atomic(run.results_dir / name, secrets.data((bundle.folder / RESULTS / name).read_bytes()))
        record = run.dir / PROBES_DIR / bundle.probe
        record.mkdir(exist_ok=True)
        for name in EXTRA_FILES:
            if (bundle.folder / name).is_file():
                write_atomic(record / name, secrets.data((bundle.folder / name).read_bytes()))
        write_atomic(record / MANIFEST, (bundle.folder / MANIFEST).read_bytes())
        taken = {
            "manifest": bundle.manifest,
            "results": bundle.results,
            "imported": datetime.now(UTC).isoformat(timespec="seconds"),
            "source": str(bundle.source.resolve()),
        }
        write_atomic(record / IMPORTED, json.dumps(taken, indent=2, ensure_ascii=False) + "\n")
    except OSError as exc:
        raise folder_error(exc, run.dir) from None
    for name in set(before["results"] if before else ()) - set(bundle.results):
        with contextlib.suppress(OSError):
            (run.results_dir / name).unlink()


# --- small helpers ------------------------------------------------------------------------------------


def _time(text: str) -> datetime:
    value = datetime.fromisoformat(text)
    return value if value.tzinfo else value.replace(tzinfo=UTC)


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def _remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path, ignore_errors=True)
    else:
        with contextlib.suppress(OSError):
            path.unlink()


__all__ = [
    "Bundle",
    "BundleError",
    "check_for_run",
    "import_bundles",
    "imported",
    "probe_address",
    "read_bundle",
    "write_bundle",
]
