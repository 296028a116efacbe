"""Async jobs: documents parsed in the background, stored page by page so that a job
survives its worker, and resumed from its first unfinished page (README, "Jobs")."""
