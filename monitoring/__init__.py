"""Stream health: metrics, the attendance timeline of every classroom, alerts (filled by the monitoring work)."""
