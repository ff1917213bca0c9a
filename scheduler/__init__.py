"""The school domain: schools, teachers, timetable, rules, quotas, workload, ledger."""
