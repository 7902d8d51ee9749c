"""`rehearse`: the test lead's command line.

Exit codes are the contract scripts rely on: 0 GO, 1 NO-GO, 2 error (bad plan, target
unreachable before anything ran, internal error). Every RehearsalError is printed as one
line without a traceback; REHEARSAL_DEBUG=1 shows tracebacks of internal errors.
"""

from __future__ import annotations

import argparse
import os
import secrets
import signal
import sys
from collections.abc import Sequence
from importlib import metadata
from pathlib import Path
from typing import Any

from rehearsal import attest, content, lifetime, parts, progress
from rehearsal.errors import ExitCode, RehearsalError, UsageError
from rehearsal.plan import LoadedPlan, PlanError, load_plan, unset_passwords
from rehearsal.preflight import check_reachable
from rehearsal.reports_folder import REFUSALS, folder_error
from rehearsal.rerun import refuse_if_running, settle
from rehearsal.run import Run, load_run, plan_of
from rehearsal.runner import Outcome, content_root, execute
from rehearsal.selection import Selection, endpoints_used, narrowed_for

EPILOG = """examples:
  rehearse demo                                   whole rehearsal of the reference hospital
  rehearse demo --fault printer-paper-out@sas-boras
  rehearse plan check plans/demo.yaml
  rehearse reference up --plan plans/demo.yaml    start the reference hospital and leave it running
  rehearse run --plan plans/demo.yaml --site sas-boras
  rehearse run --plan plans/demo.yaml --criterion tech-fhir   only what feeds that criterion
  rehearse run --plan plans/demo.yaml --tag system:new --tag writes
  rehearse -q run --plan plans/demo.yaml          the verdict line only (progress goes to stderr)
  rehearse hardware --plan plans/demo.yaml        printers and workstations only, per-site readiness
  rehearse load --plan plans/demo.yaml --workers 2   load SLOs only, Locust master + 2 workers
  rehearse hardware --rerun                       only the devices that failed in the newest run
  rehearse probe --plan plans/my-wave.yaml --as probe-sas --bundle sas.zip   inside a site's network
  rehearse import sas.zip nal.zip                 probes' bundles into the newest run, decision re-taken
  rehearse fault clear printer-paper-out@sas-boras
  rehearse fault list                             every named fault: what it does, which check catches it
  rehearse rerun                                  rerun what failed in the newest run
  rehearse report reports/latest
  rehearse runbook done migration-check --by "Per Holm"   time a manual runbook step; `show` the clock
  rehearse report --compare 20261126T024000Z-665b   list what changed since that run
  rehearse console --plan plans/demo.yaml         the command-centre page, following the plan's runs
  rehearse reference down
"""
CREDENTIALS_FILE = "credentials.env"
_quiet = [False]  # -q of this invocation: only the verdict line on stdout


def _say(text: str) -> None:
    """A line for the operator on stdout, unless -q asked for the verdict alone."""
    if not _quiet[0]:
        print(text, flush=True)


def _version() -> str:
    """The installed distribution's version: what a bug report or an evidence pack names."""
    try:
        return metadata.version("golive-rehearsal")
    except metadata.PackageNotFoundError:
        return "unknown (not installed)"


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="rehearse",
        description="Dress rehearsals for EHR go-lives: plan → run → report → go/no-go → rerun.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument(
        "--reports",
        metavar="DIR",
        default=os.environ.get("REHEARSAL_REPORTS"),
        help="where runs are kept (env REHEARSAL_REPORTS; default reports/ in the repository)",
    )
    p.add_argument(
        "-q",
        "--quiet",
        action="store_true",
        default=bool(os.environ.get("REHEARSAL_QUIET")),
        help="print the verdict line only (and errors); no progress (env REHEARSAL_QUIET)",
    )
    p.add_argument("--version", action="version", version=f"%(prog)s {_version()}")
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def plan_arg(cmd: argparse.ArgumentParser, required: bool) -> None:
        """``required``: the command reaches a real environment, so it never guesses a plan (the
        reference hospital's commands default to the demo plan, which is theirs)."""
        cmd.add_argument(
            "--plan",
            default=os.environ.get("REHEARSAL_PLAN") or (None if required else "plans/demo.yaml"),
            help="rehearsal plan (env REHEARSAL_PLAN)" + ("" if required else "; default plans/demo.yaml"),
        )

    def fault_arg(cmd: argparse.ArgumentParser) -> None:
        cmd.add_argument(
            "--fault", action="append", default=[], metavar="NAME[@SITE]", help="named fault (repeatable)"
        )

    def jobs_arg(cmd: argparse.ArgumentParser) -> None:
        cmd.add_argument(
            "--jobs",
            type=_jobs,
            default="auto",
            metavar="N",
            help="pytest sessions side by side, the sites dealt among them (default auto: one per 3 sites, "
            "at most one per core)",
        )

    def attestations_arg(cmd: argparse.ArgumentParser) -> None:
        cmd.add_argument(
            "--attestations",
            metavar="FILE",
            action="append",
            default=[],
            help="attestations supplied up front (YAML list; repeatable)",
        )

    demo = sub.add_parser("demo", help="start the reference hospital, rehearse it, report, stop it")
    plan_arg(demo, required=False)
    fault_arg(demo)
    attestations_arg(demo)
    jobs_arg(demo)

    run = sub.add_parser("run", help="run a rehearsal plan against its environment")
    plan_arg(run, required=True)
    run.add_argument("--site", action="append", default=[], help="only this site (repeatable)")
    run.add_argument(
        "--aspect",
        action="append",
        default=[],
        choices=["organisatorisk", "klinisk", "teknisk"],
        help="only this aspect (repeatable)",
    )
    run.add_argument(
        "--criterion",
        action="append",
        default=[],
        metavar="ID",
        help="only what feeds this go/no-go criterion (repeatable); decided on those criteria",
    )
    run.add_argument(
        "--tag",
        action="append",
        default=[],
        metavar="TAG",
        help="only scenarios with this Gherkin tag, without @: writes, system:new, criterion:ID (repeatable)",
    )
    attestations_arg(run)
    jobs_arg(run)
    run.add_argument(
        "--interactive", action="store_true", help="ask for each missing attestation as it comes"
    )

    load = sub.add_parser("load", help="run the plan's load profile only (Locust), SLOs per path")
    plan_arg(load, required=True)
    load.add_argument(
        "--workers",
        type=int,
        default=os.environ.get("REHEARSAL_LOAD_WORKERS") or None,
        metavar="N",
        help="Locust worker processes on this machine (env REHEARSAL_LOAD_WORKERS; default: load.workers)",
    )

    hardware = sub.add_parser("hardware", help="check the plan's printers and workstations only")
    plan_arg(hardware, required=True)
    hardware.add_argument("--site", action="append", default=[], help="only this site (repeatable)")
    hardware.add_argument(
        "--rerun", nargs="?", const="", metavar="RUN", help="only devices that failed in RUN (default newest)"
    )

    probe = sub.add_parser(
        "probe", help="as a site probe inside a site's network: check its sites' devices into a bundle"
    )
    plan_arg(probe, required=True)
    probe.add_argument("--as", dest="probe", required=True, metavar="NAME", help="the probe's id in the plan")
    probe.add_argument("--site", action="append", default=[], help="only this of its sites (repeatable)")
    probe.add_argument(
        "--bundle",
        metavar="PATH",
        help="where the bundle goes: PATH.zip, or a folder (default: probe-NAME-RUN.zip in the run folder)",
    )
    probe.add_argument(
        "--address", help="the probe's address in the site network (default: the plan's, else its route's)"
    )

    imp = sub.add_parser("import", help="take site probes' bundles into a run and re-take its decision")
    imp.add_argument("bundles", nargs="+", metavar="BUNDLE", help="a probe's bundle (.zip or folder)")
    imp.add_argument("--run", help="run folder or id (default: the newest)")

    report = sub.add_parser("report", help="(re)build the report and decision of a run")
    report.add_argument("run", nargs="?", help="run folder or id (default: the newest)")
    report.add_argument(
        "--compare",
        metavar="RUN",
        default=os.environ.get("REHEARSAL_COMPARE"),
        help="list changes since this run (env REHEARSAL_COMPARE; default: the parent of a rerun, "
        "else the wave's previous run)",
    )

    rerun = sub.add_parser("rerun", help="rerun only the failed items of a run")
    rerun.add_argument("run", nargs="?", help="run folder or id (default: the newest)")
    jobs_arg(rerun)

    att = sub.add_parser("attest", help="record a person's attestation of a step into a run")
    att.add_argument("item", help="what is attested, as named by the pending step (e.g. nedtidsrutin)")
    att.add_argument("--site", help="the site it concerns (omit for region-wide)")
    att.add_argument("--by", required=True, metavar="NAME", help="who attests")
    verdict = att.add_mutually_exclusive_group(required=True)
    verdict.add_argument("--ok", action="store_true", help="it was done and worked")
    verdict.add_argument("--fail", action="store_true", help="it was not done or did not work")
    att.add_argument("--note", default="", help="what was seen")
    att.add_argument("--run", help="run folder or id (default: the newest)")

    con = sub.add_parser("console", help="the command-centre console: a local web page following a run")
    which = con.add_mutually_exclusive_group()
    which.add_argument("--run", help="this run (folder or id); default: the newest, followed as runs start")
    which.add_argument("--plan", help="the runs of this plan: the newest, and each new one as it starts")
    con.add_argument(
        "--bind",
        metavar="HOST:PORT",
        default=os.environ.get("REHEARSAL_CONSOLE_BIND"),
        help="where to listen (env REHEARSAL_CONSOLE_BIND; default 127.0.0.1 and a free port); any other "
        "address needs REHEARSAL_CONSOLE_TOKEN",
    )

    rb = sub.add_parser("runbook", help="time a runbook step (start, done, fail) or show the clock")
    rb.add_argument("action", choices=["start", "done", "fail", "show"])
    rb.add_argument("step", nargs="?", help="the step's id in the plan's runbook (start, done, fail)")
    rb.add_argument("--by", metavar="NAME", help="who acted (start, done, fail)")
    rb.add_argument("--note", default="", help="what was seen")
    rb.add_argument("--at", metavar="TIME", help="when it happened if not now: HH:MM[:SS] today, or ISO 8601")
    rb.add_argument("--run", help="run folder or id (default: the newest)")

    plan = sub.add_parser("plan", help="work with plans")
    plan_sub = plan.add_subparsers(dest="plan_command", required=True, metavar="ACTION")
    check = plan_sub.add_parser("check", help="validate a plan; problems as file:line: field: message")
    check.add_argument("path")

    ref = sub.add_parser("reference", help="the reference hospital on loopback")
    ref.add_argument("action", choices=["up", "down", "status"])
    plan_arg(ref, required=False)
    fault_arg(ref)

    fault = sub.add_parser("fault", help="list the named faults, or switch one on the running hospital")
    fault.add_argument("action", choices=["set", "clear", "list"])
    fault.add_argument("fault", metavar="NAME[@SITE]", nargs="?", help="for set and clear")
    plan_arg(fault, required=False)  # list: which faults work in the hospital of this plan
    return p


def main(argv: Sequence[str] | None = None) -> int:
    args: argparse.Namespace | None = None
    try:
        args = _parser().parse_args(argv)
        _quiet[0] = args.quiet
        if args.quiet:  # progress goes to stderr, so stdout stays the verdict alone
            progress.disable()
        else:
            progress.enable(sys.stderr)
        return int(_dispatch(args))
    except PlanError as exc:
        for problem in exc.problems:
            print(problem, file=sys.stderr)
        return ExitCode.ERROR
    except RehearsalError as exc:
        print(f"rehearse: {exc}", file=sys.stderr)
        return ExitCode.ERROR
    except KeyboardInterrupt:
        print("rehearse: interrupted", file=sys.stderr)
        return ExitCode.ERROR
    except BrokenPipeError:  # `rehearse … | head` has read enough: stop as other Unix tools do
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # no second error at exit
        return 128 + signal.SIGPIPE
    except OSError as exc:  # a write the folder refused (full, read-only): the path and what to do
        if os.environ.get("REHEARSAL_DEBUG"):
            raise
        where = exc.filename if exc.filename is not None else (_reports_root(args) if args else None)
        if where is None or (exc.filename is None and exc.errno not in REFUSALS):
            print(f"rehearse: internal error: {exc.__class__.__name__}: {exc}", file=sys.stderr)
        else:
            print(f"rehearse: {folder_error(exc, where)}", file=sys.stderr)
        return ExitCode.ERROR
    except Exception as exc:  # internal error: one line unless debugging
        if os.environ.get("REHEARSAL_DEBUG"):
            raise
        print(f"rehearse: internal error: {exc.__class__.__name__}: {exc}", file=sys.stderr)
        return ExitCode.ERROR


def _reports_root(args: argparse.Namespace) -> Path:
    if args.reports:
        return Path(args.reports).resolve()
    root = content_root()  # an installed copy of the content is no place for reports: the working folder is
    return (Path.cwd() if content.is_installed_copy(root) else root) / "reports"


def _plan_path(given: str | None, command: str = "") -> Path:
    if given is None:
        raise UsageError(f"{command} needs a plan: --plan PLAN or the environment variable REHEARSAL_PLAN")
    path = Path(given)
    if not path.is_absolute() and not path.exists() and (content_root() / path).exists():
        path = content_root() / path
    return path


def _jobs(text: str) -> int:
    """``--jobs``: a whole number from 1, or ``auto`` (:data:`rehearsal.parts.AUTO`): a session per
    three sites of the run, at most one per core this process may use (:func:`rehearsal.parts.auto_jobs`)."""
    if text == "auto":
        return parts.AUTO
    try:
        jobs = int(text)
    except ValueError:
        jobs = 0
    if jobs < 1:
        raise argparse.ArgumentTypeError(f"{text!r}: a whole number from 1, or auto")
    return jobs


def _dispatch(args: argparse.Namespace) -> int:
    reports = _reports_root(args)
    state_dir = reports / ".reference"
    if args.command == "plan":
        loaded = load_plan(args.path)
        sites, criteria = len(loaded.plan.sites), len(loaded.plan.criteria)
        print(f"{loaded.path}: ok ({sites} sites, {criteria} criteria)", flush=True)
        # Passwords belong to the machine that runs the rehearsal, not to the plan: a plan
        # checked at a desk is still a good plan, but say what `rehearse run` will refuse.
        env = _reference_credentials(state_dir, loaded)
        for line in unset_passwords(loaded, {**os.environ, **env}):
            print(f"note: {line}; `rehearse run` refuses until it is", file=sys.stderr)
        return ExitCode.GO
    if args.command == "demo":
        loaded = load_plan(_plan_path(args.plan))
        attestations = _attestation_files(args.attestations, loaded)
        return _demo(reports, state_dir, loaded, args.fault, attestations, args.jobs)
    if args.command == "run":
        loaded = load_plan(_plan_path(args.plan, "run"))
        for site in args.site:
            loaded.plan.site(site)
        chosen = Selection.of(loaded.plan, args.criterion, args.tag)  # an unknown criterion: one line
        uses = endpoints_used(loaded.plan, chosen, args.aspect)  # the roster needs none, FHIR no web UI
        env = _require_passwords(state_dir, loaded, bool(uses))
        if uses:
            check_reachable(loaded.plan, uses)
        outcome = execute(
            reports,
            loaded,
            sites=args.site,
            aspects=args.aspect,
            env=env,
            attestations=_attestation_files(args.attestations, loaded),
            interactive=args.interactive,
            chosen=chosen,
            jobs=args.jobs,
        )
        return _report(outcome.run, loaded, outcome)
    if args.command == "load":
        return _load(reports, state_dir, args)
    if args.command == "hardware":
        return _hardware(reports, state_dir, args)
    if args.command == "probe":
        return _probe(reports, args)
    if args.command == "import":
        return _import(reports, args)
    if args.command == "report":
        return _report_of(reports, args.run, args.compare)
    if args.command == "attest":
        return _attest(reports, args)
    if args.command == "runbook":
        return _runbook(reports, args)
    if args.command == "rerun":
        return _rerun(reports, state_dir, args.run, args.jobs)
    if args.command == "console":
        from rehearsal.console import serve

        given_plan = load_plan(_plan_path(args.plan)) if args.plan else None
        return serve(reports, args.run, given_plan, args.bind)
    if args.command == "reference":
        return _reference(args, state_dir)
    if args.command == "fault":
        from reference_hospital import control

        if args.action == "list":
            given_plan = load_plan(_plan_path(args.plan)) if args.plan else None
            print(control.format_fault_list(control.fault_list(state_dir, given_plan)))
            return ExitCode.GO
        if not args.fault:
            raise UsageError(f"rehearse fault {args.action} needs NAME[@SITE] (see: rehearse fault list)")
        (control.set_fault if args.action == "set" else control.clear_fault)(state_dir, args.fault)
        print(f"fault {args.fault}: {'set' if args.action == 'set' else 'cleared'}")
        return ExitCode.GO
    raise UsageError(f"unknown command {args.command}")


def _attestation_files(given: list[str], loaded: LoadedPlan) -> list[Path]:
    """The files named, or else the plan's own: PLAN.attestations.yaml beside it, if any."""
    sibling = _sibling_attestations(loaded)
    files = [Path(f).resolve() for f in given] or ([sibling] if sibling.exists() else [])
    for path in files:
        if not path.is_file():
            raise UsageError(f"{path}: no such attestations file")
        attest.read([path])  # a broken file is a usage error now, not a failed run later
    return files


def _sibling_attestations(loaded: LoadedPlan) -> Path:
    """A plan's attestations live beside it: plans/demo.attestations.yaml."""
    return loaded.path.with_name(f"{loaded.path.stem}.attestations.yaml")


def _attest(reports: Path, args: argparse.Namespace) -> int:
    run = load_run(reports, args.run)
    plan = plan_of(run)[0].plan
    if args.site:
        plan.site(args.site)
    made = attest.record(
        run.dir, attest.Attestation(item=args.item, site=args.site, by=args.by, ok=args.ok, note=args.note)
    )
    where = f" at {made.site}" if made.site else ""
    verdict = "ok" if made.ok else "FAILED"
    print(f"attested {made.item}{where}: {verdict} by {made.by} at {made.at} (run {run.id})")
    print("take it into account with: rehearse rerun")
    return ExitCode.GO


def _runbook(reports: Path, args: argparse.Namespace) -> int:
    """`rehearse runbook start|done|fail STEP --by NAME` records; `show` prints the day on the clock."""
    from rehearsal import runbook

    run = load_run(reports, args.run)
    plan = plan_of(run)[0].plan
    if plan.runbook is None:
        raise UsageError(f"the plan of run {run.id} has no runbook (runbook: in the plan)")
    if args.action != "show":
        if not args.step or not args.by:
            raise UsageError(f"rehearse runbook {args.action} needs STEP and --by NAME")
        step = runbook.check_recordable(plan.runbook, args.step)
        at = runbook.parse_at(args.at) if args.at else None
        made = runbook.record(run.dir, step.id, args.action, args.by, args.note, at=at)
        now = runbook.load_state(run.dir, plan).step(step.id)
        print(
            f"runbook {made.step}: {made.action} by {made.by} at {made.at} (run {run.id}); "
            f"planned {now.planned_start:g}–{now.planned_end:g} min, forecast end {now.forecast_end:.1f} min"
        )
        return ExitCode.GO
    state = runbook.load_state(run.dir, plan)
    _say(runbook.table(state))
    return ExitCode.NO_GO if state.status == "fail" else ExitCode.GO


def _demo(
    reports: Path,
    state_dir: Path,
    loaded: LoadedPlan,
    faults: list[str],
    attestations: list[Path],
    jobs: int = 1,
) -> int:
    from reference_hospital import control

    env = _ensure_credentials(loaded)
    _say(f"rehearse demo: starting the reference hospital for {loaded.path}")
    with control.running(loaded, faults, state_dir):
        _say("rehearse demo: rehearsing …")
        outcome = execute(reports, loaded, env=env, attestations=attestations, jobs=jobs)
    return _report(outcome.run, loaded, outcome)


def _load(reports: Path, state_dir: Path, args: argparse.Namespace) -> int:
    """Only load/, as a run of its own; refused (exit 2, nothing sent) before anything starts."""
    from rehearsal.load import check, execute_load

    loaded = load_plan(_plan_path(args.plan, "load"))
    check(loaded.plan)  # production or a host outside allowed_hosts: exit 2 before any connection
    env = _require_passwords(state_dir, loaded)
    check_reachable(loaded.plan)
    outcome, narrowed = execute_load(reports, loaded, workers=args.workers, env=env)
    return _report(outcome.run, narrowed, outcome)


def _hardware(reports: Path, state_dir: Path, args: argparse.Namespace) -> int:
    """Only hardware_checks/, as a run of its own; the decision covers the device criteria."""
    from rehearsal.hardware import execute_hardware

    given = args.plan
    if given is None and args.rerun is not None:  # the devices of that run, checked against its plan
        given = load_run(reports, args.rerun or None).plan_path
    loaded = load_plan(_plan_path(given, "hardware"))
    env = _reference_credentials(state_dir, loaded)
    outcome, narrowed = execute_hardware(reports, loaded, sites=args.site, rerun=args.rerun, env=env)
    table = outcome.run.dir / "hardware-readiness.md"
    if table.exists():
        _say(table.read_text(encoding="utf-8"))
    return _report(outcome.run, narrowed, outcome)


def _probe(reports: Path, args: argparse.Namespace) -> int:
    """`rehearse probe`: a command of its own, not `run --as-probe`: a probe decides nothing (the
    central run does), runs only the device checks of its sites (no browser, load, central systems
    or passwords, which a site network often cannot reach) and its output is a bundle, not a verdict."""
    from rehearsal import site_probe
    from rehearsal.hardware import CHECKS_FOLDER

    loaded = load_plan(_plan_path(args.plan, "probe"))
    probe = loaded.plan.probe(args.probe)
    for site in args.site:
        if site not in probe.sites:
            raise UsageError(
                f"--site {site}: not a site of probe {probe.id} (its sites: {', '.join(probe.sites)})"
            )
    address = site_probe.probe_address(loaded.plan, probe, args.address)
    sites = args.site or list(probe.sites)
    outcome = execute(reports, loaded, sites=sites, paths=[CHECKS_FOLDER], probe=probe.id)
    run = outcome.run
    if outcome.broken and not any(run.results_dir.glob("*-result.json")):
        raise UsageError(f"the probe's checks did not run (pytest exit {outcome.pytest_exit}); see {run.dir}")
    out = Path(args.bundle) if args.bundle else run.dir / f"probe-{probe.id}-{run.id}.zip"
    bundle = site_probe.write_bundle(run, probe, out, address, _version())
    table = run.dir / "hardware-readiness.md"
    if table.exists():
        _say(table.read_text(encoding="utf-8"))
    results = len(list(run.results_dir.glob("*-result.json")))
    state = "" if run.complete else " (INCOMPLETE: the probe run was interrupted)"
    print(f"bundle {bundle}: probe {probe.id} at {address}, {', '.join(sites)}, {results} result(s){state}")
    return ExitCode.ERROR if outcome.interrupted else ExitCode.GO


def _import(reports: Path, args: argparse.Namespace) -> int:
    """`rehearse import BUNDLE…`: every bundle checked before any is taken, then the decision re-taken."""
    from rehearsal import site_probe

    run = load_run(reports, args.run)
    loaded, note = plan_of(run)
    if note:
        print(f"rehearse: {note}", file=sys.stderr)
    for bundle in site_probe.import_bundles(run, loaded.plan, [Path(b) for b in args.bundles]):
        m = bundle.manifest
        state = "" if m.get("complete") else " (INCOMPLETE probe run)"
        _say(
            f"imported probe {m['probe']} ({', '.join(m['sites'])}; ran {m['started']} at {m['address']} "
            f"on {m.get('host', '?')}){state} into run {run.id}"
        )
    return _report(run, loaded)


def _rerun(reports: Path, state_dir: Path, ref: str | None, jobs: int = 1) -> int:
    from rehearsal.rerun import select

    parent = load_run(reports, ref)
    refuse_if_running(parent, "rerun")  # its results are not final, and it is using the hospital
    parent = _settled(parent)
    _, note = plan_of(parent)
    loaded = load_plan(parent.plan_path)  # runs in the plan's own folder (paths in it are relative to it)
    if note:
        print(f"rehearse: {note.split(';')[0]}; this rerun runs the plan on disk", file=sys.stderr)
    selection, merged = select(parent)
    if not selection:
        _say(f"rehearse rerun: nothing failed or missing in run {parent.id}; nothing to rerun")
        return _report(parent, loaded)
    ids = set(selection.nodeids or [])
    needs_target = bool(
        selection.whole_plan
        or selection.missing
        or {m.latest.aspect for m in merged if m.latest.selector in ids} - {"organisatorisk"}
    )
    env = _require_passwords(state_dir, loaded, needs_target)
    if needs_target:
        check_reachable(loaded.plan)
    _say(f"rehearse rerun of {parent.id}: {selection.describe()}")
    outcome = execute(
        reports, loaded, parent=parent, selection=selection.nodeids, env=env,
        attestations=_attestation_files([], loaded), chosen=Selection.recorded(parent), jobs=jobs,
    )  # fmt: skip
    return _report(outcome.run, loaded, outcome)


def _settled(run: Run) -> Run:
    """The run, marked complete first if it ended without saying so but has every result."""
    run, note = settle(run)
    if note:
        print(f"rehearse: {note}", file=sys.stderr)
    return run


def _report_of(reports: Path, ref: str | None, compare: str | None) -> int:
    """`rehearse report`: decide on the plan the run was made with, saying so if the disk's differs."""
    run = load_run(reports, ref)
    running = lifetime.still_running(run.dir)
    if running is not None:
        pids = ", ".join(map(str, running))
        print(f"rehearse: run {run.id} is still running (pid {pids}); what it has so far:", file=sys.stderr)
    else:
        run = _settled(run)
    loaded, note = plan_of(run)
    if note:
        print(f"rehearse: {note}", file=sys.stderr)
    return _report(run, loaded, compare=compare)


def _report(run: Run, loaded: LoadedPlan, outcome: Outcome | None = None, compare: str | None = None) -> int:
    from rehearsal.report import build_report

    if outcome and outcome.broken and not any(run.results_dir.glob("*-result.json")):
        tail = (run.dir / "pytest.log").read_text(encoding="utf-8", errors="replace").strip().splitlines()
        last = tail[-1] if tail else "no output"
        raise UsageError(f"the rehearsal did not run (pytest exit {outcome.pytest_exit}): {last}")
    loaded = narrowed_for(run, loaded)  # --criterion/--tag: decided on what was selected
    decision = build_report(run, loaded.plan, compare=compare).to_json()
    _print_decision(run, decision)
    if outcome and outcome.interrupted:
        print("rehearse: interrupted; the run is recorded as incomplete", file=sys.stderr)
    return ExitCode.GO if decision["decision"] == "GO" else ExitCode.NO_GO


def _print_decision(run: Run, decision: dict[str, Any]) -> None:
    headline = decision.get("headline") or decision["decision"]
    lines = [f"{headline}: {decision['rehearsal']} run {decision['run']}"]
    if decision.get("parent"):
        lines[0] += f" (rerun of {decision['parent']})"
    if not decision.get("complete"):
        lines.append("  the run is INCOMPLETE")
    for c in decision["criteria"]:
        if c["status"] not in ("pass", "not_applicable"):
            where = f" [{c['site']}]" if c.get("site") else ""
            lines.append(f"  {c['status'].upper():7} {c['id']}{where}: {c['details']}")
    na = sum(1 for c in decision["criteria"] if c["status"] == "not_applicable")
    if na:  # listed with their reasons in gonogo.html/.md/.json
        lines.append(f"  N/A     {na} line(s) not applicable at their site; reasons in gonogo.md")
    lines.append(f"  go/no-go: {run.dir / 'gonogo.html'}")
    lines.append(f"  report:   {run.dir / 'allure-report' / 'index.html'}")
    print("\n".join(lines[:1] if _quiet[0] else lines), flush=True)


def _reference(args: argparse.Namespace, state_dir: Path) -> int:
    from reference_hospital import control

    if args.action == "down":
        stopped = control.down(state_dir)
        (state_dir / CREDENTIALS_FILE).unlink(missing_ok=True)
        print("reference hospital stopped" if stopped else "no reference hospital was running")
        return ExitCode.GO
    if args.action == "status":
        state = control.status(state_dir)
        print(state if state else "no reference hospital is running")
        return ExitCode.GO
    loaded = load_plan(_plan_path(args.plan))
    env = _ensure_credentials(loaded)
    state = control.up(loaded, args.fault, state_dir)
    _keep_credentials(state_dir, env)
    print(f"reference hospital up for {loaded.path}: {loaded.plan.environment.web_base} (pid {state['pid']})")
    return ExitCode.GO


def _ensure_credentials(loaded: LoadedPlan) -> dict[str, str]:
    """The reference hospital's users need passwords: take them from the environment, or
    make throwaway ones for this hospital (they are never written to a report or log)."""
    made = {}
    for site in loaded.plan.sites:
        for user in site.users:
            if not os.environ.get(user.password_env):
                made[user.password_env] = os.environ[user.password_env] = secrets.token_urlsafe(16)
    return made


def _keep_credentials(state_dir: Path, made: dict[str, str]) -> None:
    """Throwaway passwords of a hospital left running, so a later `rehearse run` can log in."""
    if not made:
        return
    path = state_dir / CREDENTIALS_FILE
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as out:
        out.writelines(f"{k}={v}\n" for k, v in made.items())


def _require_passwords(state_dir: Path, loaded: LoadedPlan, needed: bool = True) -> dict[str, str]:
    """The reference hospital's passwords, refusing the plan (exit 2) when a user's is unset
    and the run logs in at all (the organisational roster and attestations do not)."""
    env = _reference_credentials(state_dir, loaded)
    unset = unset_passwords(loaded, {**os.environ, **env}) if needed else []
    if unset:
        raise PlanError(unset)
    return env


def _reference_credentials(state_dir: Path, loaded: LoadedPlan) -> dict[str, str]:
    path = state_dir / CREDENTIALS_FILE
    if not path.exists():
        return {}
    pairs = dict(line.split("=", 1) for line in path.read_text(encoding="utf-8").splitlines() if "=" in line)
    wanted = {u.password_env for s in loaded.plan.sites for u in s.users}
    return {k: v for k, v in pairs.items() if k in wanted and not os.environ.get(k)}


if __name__ == "__main__":
    sys.exit(main())
