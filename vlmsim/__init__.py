"""A stand-in for vLLM serving GLM-OCR: a real HTTP server speaking OpenAI chat-completions.

Why: tests and benchmarks need the VLM's behaviour without a GPU. It validates requests
like vLLM (404 for an unknown model, 400 for a malformed body or image), queues calls
above ``max_concurrency`` (vLLM's ``--max-num-seqs``; they wait in FIFO, they are not
refused), and answers deterministically from what it received (``vlmsim.chat``).

How long a call takes depends on the timing mode:

- ``timing="fixed"`` (the default): ``latency`` (+ ``latency_per_pixel`` x pixels)
  seconds per call, whatever else runs (``vlmsim.slots``).
- ``timing="vllm"`` (``--profile NAME``): continuous batching calibrated on GLM-OCR's
  published figures (``vlmsim.profiles``, ``vlmsim.scheduler``). A call's prefill costs
  time per prompt token (one vision token per 28x28 pixels), then it decodes an output
  length drawn per task (seeded), one token per decode step, and a step gets slower the
  more sequences decode together. bench/SIMULATOR.md has the calibration, the profiles
  and what is not modelled.

Failure rules (``vlmsim.failures``) make matching calls answer an error status or stall.
Every call is recorded; ``/_sim/*`` endpoints read and change all of this
(``vlmsim.app``). ``/metrics`` has vLLM's metric names plus the simulator's own capacity
bound and busy slot-seconds (``vlmsim.metrics``).

Run it:  python -m vlmsim --port 8118 --latency 0.5 --max-concurrency 64
         python -m vlmsim --port 8118 --max-concurrency 64 --profile glm-ocr-a40
From Python (tests): ``with SimulatorProcess(latency=0.02) as sim: ... sim.url ...``
"""

from vlmsim.process import SimulatorProcess

__all__ = ["SimulatorProcess"]
