"""The calibrated model of the vllm timing: its numbers, the named profiles, the capacity
bound they imply and the output lengths they draw (bench/SIMULATOR.md derives them)."""

from __future__ import annotations

import math
import random
from dataclasses import dataclass, field, fields, replace

from vlmsim.chat import TASKS, prompt_tokens_for


@dataclass(frozen=True)
class BatchingParams:
    """The numbers of the calibrated model; bench/SIMULATOR.md derives each profile's."""

    prefill_seconds_per_token: float = field(
        metadata={"help": "GPU seconds of prefill (vision encoder + decoder) per prompt token"})
    decode_step_seconds: float = field(
        metadata={"help": "seconds of one decode step, without the per-sequence part (> 0)"})
    decode_step_seconds_per_seq: float = field(
        metadata={"help": "seconds each decoding sequence adds to every decode step"})
    text_output_tokens: float = field(
        metadata={"help": "mean output tokens of a 'Text Recognition:' call (and of other prompts)"})
    table_output_tokens: float = field(metadata={"help": "mean output tokens of a 'Table Recognition:' call"})
    formula_output_tokens: float = field(metadata={"help": "mean output tokens of a 'Formula Recognition:' call"})
    output_tokens_cv: float = field(
        metadata={"help": "coefficient of variation of the log-normal output lengths (0: always the mean)"})

    def step_seconds(self, decoding: int) -> float:
        """One decode step while ``decoding`` sequences decode together."""
        return self.decode_step_seconds + self.decode_step_seconds_per_seq * decoding

    def mean_output_tokens(self, task: str) -> float:
        return getattr(self, f"{task}_output_tokens")

    def scaled(self, slowdown: float) -> "BatchingParams":
        """The same model on a GPU ``slowdown`` times slower (same output lengths)."""
        return replace(
            self,
            prefill_seconds_per_token=round(self.prefill_seconds_per_token * slowdown, 9),
            decode_step_seconds=round(self.decode_step_seconds * slowdown, 9),
            decode_step_seconds_per_seq=round(self.decode_step_seconds_per_seq * slowdown, 9),
        )


BATCHING_FIELDS = tuple(f.name for f in fields(BatchingParams))
BATCHING_HELP = {f.name: f.metadata["help"] for f in fields(BatchingParams)}
GLM_OCR_A40 = BatchingParams(
    prefill_seconds_per_token=75e-6,
    decode_step_seconds=3.0e-3,
    decode_step_seconds_per_seq=50e-6,
    text_output_tokens=100,
    table_output_tokens=400,
    formula_output_tokens=50,
    output_tokens_cv=0.6,
)
PROFILES: dict[str, BatchingParams] = {
    "glm-ocr-a40": GLM_OCR_A40,
    "glm-ocr-a100": replace(
        GLM_OCR_A40, prefill_seconds_per_token=35e-6, decode_step_seconds=2.0e-3, decode_step_seconds_per_seq=20e-6
    ),
    # Not a real GPU: an A40 five times slower, so that one simulated GPU saturates
    # before a client on a small machine does, with 16 and with 64 slots.
    "glm-ocr-bottleneck": GLM_OCR_A40.scaled(5.0),
}
DEFAULT_PROFILE = "glm-ocr-a40"

# What the capacity bound assumes: every request carries a paragraph-sized crop (32 x 8
# vision tokens) and the tasks come in this mix.
REFERENCE_CROP = (896, 224)
REFERENCE_TASK_MIX = {"text": 0.8, "table": 0.1, "formula": 0.1}
REFERENCE_PROMPT_TOKENS = prompt_tokens_for("Text Recognition:", *REFERENCE_CROP)  # 266


def gpu_seconds_per_request(params: BatchingParams, max_num_seqs: int, task: str) -> float:
    """GPU time one reference request of ``task`` costs while ``max_num_seqs`` sequences
    decode together: its prefill (which pauses decoding) plus its share of the steps."""
    prefill = params.prefill_seconds_per_token * REFERENCE_PROMPT_TOKENS
    return prefill + params.mean_output_tokens(task) * params.step_seconds(max_num_seqs) / max_num_seqs


def batching_capacity(params: BatchingParams, max_num_seqs: int, mix: dict[str, float] = REFERENCE_TASK_MIX) -> float:
    """Completed requests/s with every slot always busy: the upper bound of the vllm
    timing, since a step's cost per sequence only falls as the batch grows."""
    weight = sum(mix.values())
    return weight / sum(share * gpu_seconds_per_request(params, max_num_seqs, task) for task, share in mix.items())


class OutputLengths:
    """Output lengths drawn per task from a log-normal with the profile's mean and
    coefficient of variation. One seeded stream per task: the n-th call of a task gets
    the same length in every run with the same seed, whatever the other tasks do."""

    def __init__(self, params: BatchingParams, seed: int) -> None:
        self.params = params
        self._streams = {task: random.Random(f"{seed}:{task}") for task in TASKS}

    def draw(self, task: str) -> int:
        mean = self.params.mean_output_tokens(task)
        cv = self.params.output_tokens_cv
        if cv == 0:
            return max(1, round(mean))
        sigma = math.sqrt(math.log1p(cv * cv))
        return max(1, round(self._streams[task].lognormvariate(math.log(mean) - sigma * sigma / 2, sigma)))
