"""``docparse compare``: the same documents through two VLM profiles of the gateway, side
by side (issue #18). run.py sends and times, metrics.py scores, report.py writes."""
