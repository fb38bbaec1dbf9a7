"""For the retention team: business KPIs, the self-contained HTML report, the readable list."""
