"""Fuzzing the whole service at scale (``make fuzz``, ``python -m bench.fuzz``): inputs
generated from the gateway's own /openapi.json (schemathesis) and byte-level mutations of
real PDFs and images, sent to a real stack; no answer may be a 5xx, hang, or lose a
process. The parts: probes (one input on the wire, its reproducer file), mutations (the
byte-level mutators and their seeds), inputs (what a run sends, from a seed), checks
(sending one input and judging the answer), run (the run, its report, the command line)."""
