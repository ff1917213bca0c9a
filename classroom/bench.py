"""`classroom bench NAME ...`: benchmarks are programs that print what they measured."""

from __future__ import annotations

import sys


def run_bench(argv: list[str]) -> int:
    if not argv or argv[0] in ("-h", "--help"):
        print("usage: classroom bench {schedule,fanout,join,metrics,record,relay,cascade} [options]"
              "   (each takes --help)")
        return 0 if argv else 2
    name = argv[0]
    if name == "schedule":
        from scheduler.bench import main as schedule_main

        return schedule_main(argv[1:])
    if name == "fanout":
        from media.bench import main as media_main

        return media_main(argv)
    if name == "join":
        from signaling.bench_join import main as join_main

        return join_main(argv[1:])
    if name == "record":
        from media.bench_record import main as record_main

        return record_main(argv[1:])
    if name == "relay":
        from media.bench_relay import main as relay_main

        return relay_main(argv[1:])
    if name == "cascade":
        from edge.bench_cascade import main as cascade_main

        return cascade_main(argv[1:])
    if name == "metrics":
        from monitoring.bench import main as metrics_main

        return metrics_main(argv[1:])
    print(f"classroom bench: unknown benchmark '{name}' (schedule, fanout, join, metrics, record, relay, cascade)",
          file=sys.stderr)
    return 2
