"""The `classroom` command: serve, edge, directory, import, check, evidence, report, template, demo, bench, config."""

from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import sys
from datetime import date, datetime
from pathlib import Path

from classroom.config import Config, ConfigError, describe, load_config
from classroom.permissions import data_files, owner_only_umask, secure_data
from scheduler.db import Database, StorageError
from scheduler.timetable import Timetable
from scheduler.timetable import where as problem_where

log = logging.getLogger("classroom")


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="classroom", description="live-classroom: the three-classrooms programme")
    p.add_argument("--config", type=Path, help="TOML configuration file (default: built-in defaults)")
    sub = p.add_subparsers(dest="command", required=True)

    s = sub.add_parser("serve", help="run the service (web, API, timed jobs) in one process")
    s.add_argument("--host", help="address to listen on (default from config: 0.0.0.0)")
    s.add_argument("--port", type=int, help="port to listen on (default 8080)")
    s.add_argument("--data-dir", help="data folder (database, token, reports); default ./data")
    s.add_argument("--demo", action="store_true", help="load the demo county into an empty database first")
    s.add_argument(
        "--public-url",
        help="the address people type, e.g. https://classroom.county.example (enrolment links and QR codes); "
        "default from config [signaling] public_url, else the address each request came to",
    )
    s.add_argument("--tls-cert", help="HTTPS certificate chain (PEM); default from config [signaling] tls_cert")
    s.add_argument("--tls-key", help="HTTPS private key (PEM)")
    s.add_argument(
        "--tls-self-signed",
        action="store_true",
        help="serve HTTPS with a self-signed certificate made in the data folder (a trial: browsers warn once)",
    )
    s.add_argument(
        "--media",
        choices=("workers", "local"),
        default="workers",
        help="run media rooms in worker processes, one per core (default), or in the serving process",
    )
    s.add_argument(
        "--redis",
        metavar="URL",
        help="share the cluster's registry on this Redis (redis://host:6379/0): nodes register there and only "
        "the node holding the scheduler's job lock runs the timed jobs; default from config [cluster] redis_url, "
        "else one machine (in-process)",
    )

    n = sub.add_parser("edge", help="run a media node near the schools: its media plane and the control API the "
                       "control node uses to hold copies of lessons there; registers in the cluster's Redis")
    n.add_argument("--control", required=True, metavar="URL", help="the control node, e.g. https://classroom.example")
    n.add_argument("--redis", metavar="URL", help="the cluster's Redis (default from config [cluster] redis_url)")
    n.add_argument("--region", required=True, help="the region this node serves, for placement")
    n.add_argument("--county", default="", help="the county this node serves, for placement")
    n.add_argument("--host", help="address the control API listens on (default from config: 0.0.0.0)")
    n.add_argument("--port", type=int, help="port of the control API (default 8080)")
    n.add_argument("--data-dir", help="data folder (the node-secret file, if not configured); default ./data")
    n.add_argument("--node-id", default="", help="this node's name in the registry (default edge-<host name>:<port>)")
    n.add_argument("--media", choices=("workers", "local"), default="workers",
                   help="media rooms in worker processes, one per core (default), or in this process")
    n.add_argument("--tls-cert", help="HTTPS certificate chain (PEM) for the control API; default from config "
                   "[signaling] tls_cert (the control node checks it: [cluster] ca_file)")
    n.add_argument("--tls-key", help="HTTPS private key (PEM)")
    n.add_argument("--upstream", default="", metavar="NODE_ID",
                   help="the edge this one takes its lessons from (a county's edge under its region's); "
                        "default: the control node")

    for name, helptext in (
        ("import", "import a timetable CSV (all or nothing)"),
        ("check", "check a CSV, write nothing"),
    ):
        c = sub.add_parser(name, help=helptext)
        c.add_argument("file", type=Path)
        c.add_argument("--data-dir")
        c.add_argument("--json", action="store_true", help="print the result as JSON")
        c.add_argument("--lang", choices=("en", "zh"), default="en", help="language of the problems (default en)")

    e = sub.add_parser("evidence", help="attach attendance evidence (CSV or XLSX) to lessons awaiting evidence")
    e.add_argument("file", type=Path)
    e.add_argument("--data-dir")
    e.add_argument("--settle", action="store_true", help="settle the lessons from their evidence at once")
    e.add_argument("--check", action="store_true", help="check only, write nothing")
    e.add_argument("--lang", choices=("en", "zh"), default="en", help="language of the problems (default en)")

    g = sub.add_parser("directory", help="import counties, schools, classrooms, teachers, communities, semesters")
    g.add_argument("file", type=Path, help="an XLSX workbook (a sheet per table) or a CSV of one table")
    g.add_argument("--data-dir")
    g.add_argument("--check", action="store_true", help="check only, write nothing")
    g.add_argument("--lang", choices=("en", "zh"), default="en", help="language of the problems (default en)")

    m = sub.add_parser("template", help="write an empty workbook with the Chinese headers an import reads")
    m.add_argument("name", choices=("directory", "timetable", "evidence"))
    m.add_argument("-o", "--output", type=Path, required=True)

    r = sub.add_parser("report", help="quota and workload report of a semester")
    r.add_argument("--data-dir")
    r.add_argument("--semester", help="semester name or id (default: the current one)")
    r.add_argument("--section", default="", help="teachers, schools, workload, famous_school (default: all)")
    r.add_argument("--format", choices=("json", "csv", "xlsx", "text"), default="text")
    r.add_argument("--as-of", type=date.fromisoformat, help="report as of this date (default today)")
    r.add_argument("--lang", choices=("zh", "en"), default="zh")
    r.add_argument("-o", "--output", type=Path, help="write to this file instead of standard output")

    x = sub.add_parser("export", help="one side-by-side MP4 (camera + courseware) of a lesson's recording, for sharing")
    x.add_argument("lesson", type=int, help="the lesson's id")
    x.add_argument("--data-dir")
    x.add_argument("-o", "--output", type=Path, help="the MP4 to write (default lesson-ID.mp4 here)")

    d = sub.add_parser("demo", help="load the demo county into an empty database")
    d.add_argument("--data-dir")

    sub.add_parser("config", help="print the effective configuration (secrets masked)")

    k = sub.add_parser("cluster", help="the live nodes in the cluster's Redis, the job lock's holder, a placement")
    k.add_argument("--redis", metavar="URL", help="the cluster's Redis (default from config [cluster] redis_url)")
    k.add_argument("--county", help="with --region: where a receiving classroom of this county would be placed")
    k.add_argument("--region")
    k.add_argument("--json", action="store_true", help="print the result as JSON")
    k.add_argument("--lang", choices=("zh", "en"), default="zh")

    b = sub.add_parser("bench", help="benchmarks: schedule, fanout, join, metrics, record, relay, cascade",
                       add_help=False)
    b.add_argument("rest", nargs=argparse.REMAINDER)
    return p


def _config(args: argparse.Namespace) -> Config:
    config = load_config(args.config)
    overrides = {}
    for key in ("host", "port", "data_dir"):
        value = getattr(args, key, None)
        if value is not None:
            overrides[key] = value
    if overrides:
        config = dataclasses.replace(config, server=dataclasses.replace(config.server, **overrides))
    redis_url = getattr(args, "redis", None)
    if redis_url is not None:
        config = dataclasses.replace(config, cluster=dataclasses.replace(config.cluster, redis_url=redis_url))
    public_url = getattr(args, "public_url", None)
    if public_url is not None:
        config = dataclasses.replace(config, signaling=dataclasses.replace(config.signaling, public_url=public_url))
    return config


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s", stream=sys.stderr)
    # APScheduler logs every job it adds or runs (two per lesson): the lessons' own log lines say what happened
    logging.getLogger("apscheduler").setLevel(logging.WARNING)
    if args.command == "bench":
        from classroom.bench import run_bench

        return run_bench(args.rest)
    if args.command == "template":
        from scheduler.templates import template_xlsx

        args.output.write_bytes(template_xlsx(args.name))
        print(f"wrote {args.output}", file=sys.stderr)
        return 0
    try:
        config = _config(args)
        logging.getLogger().setLevel(config.server.log_level.upper())
        if args.command == "config":
            print(describe(config))
            return 0
        if args.command == "cluster":
            return _cluster(config, args)
        if args.command == "edge":
            return _edge(config, args)
        owner_only_umask()  # the database, its -wal/-shm, keys and reports: owner-only from the start
        db = Database(config.server.database_path)
        secure_data(data_files(config.server.data_path, config.server.database_path))
    except (ConfigError, StorageError) as exc:
        print(f"classroom: {exc}", file=sys.stderr)
        return 2
    try:
        timetable = Timetable(db, config.scheduler)
        if args.command == "serve":
            return _serve(config, db, timetable, args)
        if args.command in ("import", "check"):
            return _import(timetable, args.file, dry_run=args.command == "check", as_json=args.json, lang=args.lang)
        if args.command == "report":
            return _report(timetable, args)
        if args.command == "evidence":
            return _evidence(timetable, args)
        if args.command == "directory":
            return _directory(timetable, args)
        if args.command == "demo":
            print(json.dumps(_load_demo(config, timetable), ensure_ascii=False))
            return 0
        if args.command == "export":
            return _export(config, db, timetable, args)
    except StorageError as exc:
        print(f"classroom: {exc}", file=sys.stderr)
        return 2
    finally:
        db.close()
    return 1


def _export(config: Config, db: Database, timetable: Timetable, args: argparse.Namespace) -> int:
    """Transcode a lesson's newest recording into one side-by-side MP4, with a progress bar; audited."""
    from media.export import ExportError, export_side_by_side
    from scheduler.recordings import Recordings

    rc = config.recording
    folder = Path(rc.folder).expanduser() if rc.folder else config.server.data_path / "recordings"
    recs = Recordings(db, timetable.repo, rc, folder).of_lessons([args.lesson])
    if not recs or not recs[0].path:
        print(f"classroom export: lesson {args.lesson} has no finished recording", file=sys.stderr)
        return 2
    rec = recs[0]
    out = args.output or Path(f"lesson-{args.lesson}.mp4")

    def bar(fraction: float) -> None:
        filled = int(fraction * 40)
        print(f"\r[{'#' * filled}{' ' * (40 - filled)}] {fraction * 100:5.1f} %", end="", file=sys.stderr, flush=True)

    try:
        done = export_side_by_side(Path(rec.path), Path(rec.screen_path) if rec.screen_path else None, out, bar)
    except ExportError as exc:
        print(f"\nclassroom export: {exc}", file=sys.stderr)
        return 1
    print(file=sys.stderr)
    with db.write() as conn:
        timetable.repo.add_audit(conn, "cli", "export_recording", "done",
                                 f"recording {rec.id} of lesson {args.lesson} -> {out}", lesson_id=args.lesson)
    print(json.dumps({"path": str(done.path), "duration_s": round(done.duration_s, 2), "frames": done.frames,
                      "side_by_side": done.side_by_side, "size_bytes": done.size_bytes}))
    return 0


def _serve(config: Config, db: Database, timetable: Timetable, args: argparse.Namespace) -> int:
    from aiohttp import web

    from classroom.app import build_app
    from signaling.tls import self_signed, server_context

    demo = args.demo
    cert = args.tls_cert or config.signaling.tls_cert
    key = args.tls_key or config.signaling.tls_key
    if bool(cert) != bool(key):
        print("classroom: --tls-cert and --tls-key go together", file=sys.stderr)
        return 2
    if args.tls_self_signed and not cert:
        cert_path, key_path = self_signed(config.server.data_path / "tls")
        cert, key = str(cert_path), str(key_path)
        log.info("HTTPS with the self-signed certificate %s", cert)
    ssl_context = server_context(Path(cert), Path(key)) if cert else None

    scheme = "https" if ssl_context is not None else "http"
    token_file = config.server.data_path / "admin-token"
    # the essentials first, before the configuration and the start-up log
    essentials = [
        f"live-classroom on {scheme}://{_host_for_people(config.server.host)}:{config.server.port}/",
        f"  administrator page: {scheme}://<this host>:{config.server.port}/admin (also /teacher, /classroom, /tech)",
        "  administrator token: "
        + (
            f"in {token_file} (owner-only; first login and Authorization: Bearer ...)"
            if not config.server.admin_token
            else "as configured ([server] admin_token)"
        ),
    ]
    if demo:
        essentials.append(f"  demo logins: {config.server.data_path / 'demo-accounts.txt'} (owner-only)")
    print("\n".join(essentials) + "\n", file=sys.stderr, flush=True)
    print("effective configuration:\n" + describe(config), file=sys.stderr, flush=True)
    if demo:
        if timetable.repo.schools():
            log.info("--demo: the database already has data; leaving it as it is")
        else:
            log.info("--demo: %s", _load_demo(config, timetable))
    app = build_app(config, db, tls=ssl_context is not None, media=args.media)
    log.info("API token: %s (Authorization: Bearer ...)", token_file if not config.server.admin_token else "configured")
    log.info(
        "pages: %s://<this host>:%d/admin (first login: the administrator token), /teacher, /classroom, /tech",
        scheme,
        config.server.port,
    )
    web.run_app(
        app, host=config.server.host, port=config.server.port, ssl_context=ssl_context, print=None, handle_signals=True
    )
    return 0


def _edge(config: Config, args: argparse.Namespace) -> int:
    import asyncio

    from edge.node import EdgeOptions, run_edge
    from edge.node_secret import NodeSecretMissing

    if not config.cluster.redis_url:
        print("classroom edge: an edge registers in the cluster's Redis: give --redis URL (or [cluster] redis_url)",
              file=sys.stderr)
        return 2
    print("effective configuration:\n" + describe(config), file=sys.stderr, flush=True)
    owner_only_umask()
    config.server.data_path.mkdir(parents=True, exist_ok=True)
    cert = args.tls_cert or config.signaling.tls_cert
    key = args.tls_key or config.signaling.tls_key
    if bool(cert) != bool(key):
        print("classroom edge: --tls-cert and --tls-key go together", file=sys.stderr)
        return 2
    options = EdgeOptions(control_url=args.control, region=args.region, county=args.county, media=args.media,
                          node_id=args.node_id, upstream=args.upstream, tls_cert=cert or "", tls_key=key or "")
    try:
        asyncio.run(run_edge(config, options))
    except NodeSecretMissing as exc:
        print(f"classroom edge: {exc}", file=sys.stderr)
        return 2
    return 0


def _cluster(config: Config, args: argparse.Namespace) -> int:
    import asyncio

    from edge.placement import ClassroomLocation
    from edge.redis_registry import RedisRegistry
    from edge.registry import RegistryUnavailable
    from edge.status import ClusterStatus, format_status, read_status

    cluster = config.cluster
    if not cluster.redis_url:
        print("classroom: one machine, no shared registry: give --redis URL (or [cluster] redis_url)", file=sys.stderr)
        return 2
    if bool(args.county) != bool(args.region):
        print("classroom: --county and --region go together", file=sys.stderr)
        return 2
    where = ClassroomLocation(args.county, args.region) if args.county else None

    async def read() -> ClusterStatus:
        registry = RedisRegistry(cluster.redis_url, heartbeat_interval=cluster.heartbeat_s, prefix=cluster.key_prefix)
        try:
            return await read_status(registry, where)
        finally:
            await registry.close()

    try:
        status = asyncio.run(read())
    except RegistryUnavailable as exc:
        print(f"classroom: {exc}", file=sys.stderr)
        return 1
    print(json.dumps(status.to_json(), ensure_ascii=False, indent=1) if args.json else format_status(status, args.lang))
    return 0


def _host_for_people(host: str) -> str:
    return "127.0.0.1" if host in ("0.0.0.0", "::", "") else host


def _load_demo(config: Config, timetable: Timetable) -> dict[str, object]:
    """The demo county, plus a login for each of its teachers and a technician, so every page can be tried.

    One random password for the demo accounts, written with the usernames to <data>/demo-accounts.txt
    (owner-only); the log names the file, never the password."""
    import os
    import secrets

    from scheduler.demo import load_demo
    from signaling.store import AccessStore

    summary: dict[str, object] = dict(load_demo(timetable))
    store = AccessStore(timetable.db)
    password = secrets.token_urlsafe(9)
    lines = [f"# demo logins at /login; every password is {password}"]
    for teacher in timetable.repo.teachers():
        username = f"teacher{teacher.id}"
        store.create_account(username, password, "teacher", teacher_id=teacher.id)
        lines.append(f"{username}\t{teacher.name}\t{teacher.level.value}")
    county = timetable.repo.counties()[0]
    store.create_account("tech", password, "technician", county_id=county.id)
    lines.append("tech\ttechnician")
    path = config.server.data_path / "demo-accounts.txt"
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as f:
        f.write("\n".join(lines) + "\n")
    # the password stays in the owner-only file: logs are read (and shipped) by more people than the data folder
    log.info("demo logins (teacher1..teacher%d, tech): usernames and password in %s", len(lines) - 2, path)
    summary["accounts"] = len(lines) - 1
    return summary


def _import(timetable: Timetable, path: Path, dry_run: bool, as_json: bool, lang: str = "en") -> int:
    try:
        data = path.read_bytes()
    except OSError as exc:
        print(f"classroom: cannot read {path}: {exc.strerror}", file=sys.stderr)
        return 2
    result = timetable.import_csv(data, path.name, "cli", dry_run=dry_run)
    if as_json:
        print(json.dumps(result.to_json(), ensure_ascii=False, indent=1))
    else:
        for p in result.errors + result.warnings:
            where = f"{problem_where(p)}: " if p.line else ""
            message = (p.message_zh or p.message) if lang == "zh" else p.message
            print(f"{path.name}: {where}{p.severity}: {message} [{p.code}]")
        verb = "would add" if dry_run else "added"
        state = "OK" if result.ok else "REFUSED, nothing imported"
        added = result.lessons_added if result.ok else 0
        print(
            f"{path.name}: {state}: {result.rows} rows, {verb} {added} lessons, "
            f"{result.lessons_unchanged} unchanged, {len(result.errors)} errors, {len(result.warnings)} warnings"
        )
    return 0 if result.ok else 1


def _evidence(timetable: Timetable, args: argparse.Namespace) -> int:
    try:
        data = args.file.read_bytes()
    except OSError as exc:
        print(f"classroom: cannot read {args.file}: {exc.strerror}", file=sys.stderr)
        return 2
    result = timetable.import_evidence(data, args.file.name, "cli", dry_run=args.check, settle=args.settle)
    for p in result.errors:
        message = (p.message_zh or p.message) if args.lang == "zh" else p.message
        print(f"{args.file.name}: {problem_where(p) or 'file'}: error: {message} [{p.code}]")
    state = "OK" if result.ok else "REFUSED, nothing written"
    print(
        f"{args.file.name}: {state}: {result.rows} rows, evidence for {result.lessons} lessons, "
        f"{result.unchanged} unchanged, {result.settled} settled, {len(result.errors)} errors"
    )
    return 0 if result.ok else 1


def _directory(timetable: Timetable, args: argparse.Namespace) -> int:
    try:
        data = args.file.read_bytes()
    except OSError as exc:
        print(f"classroom: cannot read {args.file}: {exc.strerror}", file=sys.stderr)
        return 2
    result = timetable.import_directory(data, args.file.name, "cli", dry_run=args.check)
    for p in result.errors:
        message = (p.message_zh or p.message) if args.lang == "zh" else p.message
        place = problem_where(p) or (f"sheet {p.sheet}" if p.sheet else "file")
        print(f"{args.file.name}: {place}: error: {message} [{p.code}]")
    if result.ok:
        verb = "would change" if args.check else "changed"
        print(
            f"{args.file.name}: OK: {result.rows} rows ({', '.join(result.tables)}), {verb}: {result.added} added, "
            f"{result.changed} updated, {result.unchanged} unchanged"
        )
    else:
        print(f"{args.file.name}: REFUSED, nothing imported: {len(result.errors)} errors")
    return 0 if result.ok else 1


def _report(timetable: Timetable, args: argparse.Namespace) -> int:
    from scheduler.export import report_csv, report_json, report_xlsx
    from scheduler.reports import SECTIONS, build_report
    from scheduler.rules.calendar import current_semester

    semesters = timetable.repo.semesters()
    today = args.as_of or datetime.now(timetable.config.tz).date()
    if args.semester:
        chosen = [s for s in semesters if s.name == args.semester or str(s.id) == args.semester]
    else:
        current = current_semester(semesters, today)
        chosen = [current] if current is not None else []
    if not chosen:
        print("classroom: no such semester" if args.semester else "classroom: no semester yet", file=sys.stderr)
        return 2
    sections = [x for x in args.section.split(",") if x] or list(SECTIONS)
    bad = [x for x in sections if x not in SECTIONS]
    if bad:
        print(f"classroom: unknown section {', '.join(bad)} (one of {', '.join(SECTIONS)})", file=sys.stderr)
        return 2
    report = build_report(timetable.db, timetable.config, chosen[0], today)
    if args.format == "json":
        data = report_json(report, sections)
    elif args.format == "xlsx":
        if not args.output:
            print("classroom: an XLSX report needs -o FILE", file=sys.stderr)
            return 2
        data = report_xlsx(report, sections, args.lang)
    elif args.format == "csv":
        if len(sections) != 1:
            print("classroom: a CSV report holds one section: add --section teachers (or ...)", file=sys.stderr)
            return 2
        data = report_csv(report, sections[0], args.lang)
    else:
        data = _text_report(report, sections).encode()
    if args.output:
        args.output.write_bytes(data)
        print(f"wrote {args.output}", file=sys.stderr)
    else:
        sys.stdout.buffer.write(data)
    return 0


def _text_report(report: object, sections: list[str]) -> str:
    from scheduler.reports import COLUMNS, Report

    assert isinstance(report, Report)
    out = [f"# {report.semester.name}, as of {report.as_of.isoformat()}"]
    for section in sections:
        rows = report.sections[section]
        keys = [k for k, _ in COLUMNS[section]]
        out.append(f"\n## {section} ({len(rows)})")
        table = [keys] + [[str(r[k]) for k in keys] for r in rows]
        widths = [max(_width(row[i]) for row in table) for i in range(len(keys))]
        for row in table:
            out.append("  ".join(cell + " " * (w - _width(cell)) for cell, w in zip(row, widths, strict=True)))
    return "\n".join(out) + "\n"


def _width(text: str) -> int:
    return sum(2 if ord(ch) > 0x2E80 else 1 for ch in text)


if __name__ == "__main__":
    raise SystemExit(main())
