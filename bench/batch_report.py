"""What ``bench.batch`` makes of its points: per number of clients the VLM's utilisation
against issue #16's target, images/s against what the VLM can do at all, batch latency,
errors, CPU per image and the machine's load; and their Markdown. Works from the results
dictionary alone, like ``bench.report``."""

from __future__ import annotations

from dataclasses import dataclass

from bench.report import _num, markdown_table
from vlmsim.chat import prompt_tokens_for, task_of
from vlmsim.profiles import PROFILES, BatchingParams, OutputLengths
from vlmsim.scheduler import BatchScheduler, Sequence

TARGET_UTILISATION = 0.95  # issue #16: batches of 2N images keep the VLM's N slots 95% busy


@dataclass(frozen=True)
class IdealLoad:
    """What ``ideal_utilisation`` runs: ``clients`` sending batches of ``images`` back to
    back, client k starting ``k * stagger`` s after the first, ``batches`` each measured."""

    clients: int
    images: int
    stagger: float = 0.0
    batches: int = 20
    seed: int = 0


def point_summary(point: dict, images_per_batch: int, ideal: float | None) -> dict:
    """The numbers issue #16 asks for, from a ``bench.point`` point whose "pages" are the
    images of the batches answered in the window and whose "regions" are those of them
    read without error; ``ideal``: the utilisation a service that costs nothing would
    reach (``ideal_utilisation``)."""
    window = point["window_s"]
    utilisation = point["vlm_utilisation"]["value"]
    cpu = point["cpu"]
    read = point["regions"]["from_results"]
    machine = cpu.get("machine_busy_s")
    return {
        "vlm_utilisation": utilisation,
        "target_met": utilisation is not None and utilisation >= TARGET_UTILISATION,
        "ideal_utilisation": ideal,
        "images_per_s": read / window,
        "vlm_calls_per_s": point["regions"]["simulator_succeeded_calls"] / window,
        "batches": {**point["requests"], "images_each": images_per_batch},
        "images_read": read,
        "image_errors": point["pages"] - read,
        "batch_errors": point["errors"],
        "batch_latency_s": {key: point["latency_s"][key] for key in ("n", "mean", "p50", "p95", "max")},
        "vlm_mean_running": point["vlm_utilisation"]["mean_running"],
        "vlm_mean_waiting": point["vlm_utilisation"]["mean_waiting"],
        "cpu_per_image_s": {role: entry["per_page_s"] for role, entry in sorted(cpu["by_role"].items())},
        "cpu_total_per_image_s": cpu["total_per_page_s"],
        "stack_cores": cpu["total_s"] / window,
        "machine_busy_cores": machine / window if machine is not None else None,
        # At least 0: the machine's counter and the processes' are read a moment apart.
        "other_cores": max(0.0, cpu["outside_stack_s"] / window) if machine is not None else None,
    }


def vlm_model(simulator: dict, config: dict, call: dict) -> tuple[BatchingParams, int, str]:
    """The stand-in's timing for the image as the service sent it (``call``: one of the
    stand-in's call records) as the vllm timing's numbers, its prompt tokens and task. The
    fixed timing is that model with one output token, a step of the fixed latency and no
    prefill: every call takes the latency whatever else runs."""
    if simulator["timing"] != "vllm":
        latency = config["vlm_latency"]
        return BatchingParams(0.0, latency, 0.0, 1, 1, 1, 0.0), 0, "text"
    return (PROFILES[simulator["profile"]], prompt_tokens_for(call["prompt"], call["width"], call["height"]),
            task_of(call["prompt"]))


def vlm_bound(simulator: dict, config: dict, call: dict) -> dict:
    """Images/s the VLM stand-in completes with every slot always busy, for the image as
    the service sent it: 1 / (prefill + mean output tokens x step(N) / N), which is
    bench/SIMULATOR.md's bound for this image instead of its reference crop (N / latency
    in the fixed timing)."""
    params, tokens, task = vlm_model(simulator, config, call)
    slots = simulator["max_num_seqs"]
    seconds = params.prefill_seconds_per_token * tokens + params.mean_output_tokens(task) * params.step_seconds(slots) / slots
    assumes = (f"{simulator['profile']}, {slots} sequences decoding, the mean {task} output length"
               if simulator["timing"] == "vllm" else f"fixed timing, {config['vlm_latency']:g} s a call")
    return {"image_in_vlm": f"{call['width']}x{call['height']}", "prompt": call["prompt"], "prompt_tokens": tokens,
            "images_per_s": 1 / seconds if seconds else None, "assumes": assumes}


def ideal_utilisation(params: BatchingParams, slots: int, prompt_tokens: int, task: str, load: IdealLoad) -> float:
    """The VLM's utilisation under ``load`` when the service costs nothing: every image
    of a batch is at the VLM the moment it is sent, and a batch is answered the moment
    its last image is done, so the next one is sent at once. The stand-in's own
    scheduler (``vlmsim.scheduler``) runs it; batches sent at the same moment arrive
    interleaved, as the service interleaves them. Measured after each client's first
    batch, over ``load.batches`` more per client: the bound a real service can approach
    but not pass (its VLM idles when a batch's last, longest images are left)."""
    scheduler = BatchScheduler(params, slots)
    lengths = OutputLengths(params, load.seed)
    due: dict[int, float | None] = {client: client * load.stagger for client in range(load.clients)}
    left: dict[int, int] = {}  # images still in the VLM, per client
    owner: dict[Sequence, int] = {}
    answered, start = 0, None
    while answered < (load.batches + 1) * load.clients:
        event = scheduler.next_event()
        moments = [t for t in (*due.values(), event) if t is not None]
        for sequence in scheduler.advance(min(moments)):
            client = owner.pop(sequence)
            left[client] -= 1
            if not left[client]:
                answered += 1
                due[client] = scheduler.now
        if start is None and answered >= load.clients:
            start = (scheduler.now, scheduler.busy_slot_seconds)
        sending = [client for client, t in due.items() if t is not None and t <= scheduler.now + 1e-9]
        batches = [[Sequence(prompt_tokens, lengths.draw(task)) for _ in range(load.images)] for _ in sending]
        for client, batch in zip(sending, batches):
            due[client], left[client] = None, load.images
            owner.update((sequence, client) for sequence in batch)
        for sequence in (s for group in zip(*batches) for s in group):
            scheduler.submit(sequence)
    assert start is not None
    return (scheduler.busy_slot_seconds - start[1]) / (slots * (scheduler.now - start[0]))


def markdown(results: dict) -> str:
    """The human-readable report."""
    run, machine, bound = results["run"], results["machine"], results["simulator"]["vlm_bound"]
    simulator = results["simulator"]
    timing = (f"profile `{simulator['profile']}` (continuous batching)" if simulator["timing"] == "vllm"
              else f"fixed timing, {results['stack']['config']['vlm_latency']:g} s a call")
    points = results["points"]
    parts = [
        f"# /api/ocr/batch benchmark {run['started']}", "",
        f"`{' '.join(run['command'])}`", "",
        f"Batches of **{run['images']}** images ({run['image']['name']}, {run['image']['width']}x"
        f"{run['image']['height']} PNG, {run['image']['bytes'] / 1024:.0f} KiB; the VLM got "
        f"{bound['image_in_vlm']}), task `{run['task']}`, against a VLM stand-in of **{run['slots']}** slots "
        f"({timing}; HPS_VLM_MAX_CONCURRENCY {run['slots']}); clients started {run['stagger_s']:g} s apart; "
        f"window {run['duration_s']:g} s after a "
        f"{run['warmup_s']:g}-s warm-up. Machine: {machine['cpus']} CPUs ({machine['cpu_model']}), load average "
        f"before {machine['loadavg_before'][0]:.2f}, after {machine['loadavg_after'][0]:.2f}; commit "
        f"{results['git']['commit'][:10]}{' (dirty)' if results['git']['dirty'] else ''}.", "",
        f"Target: VLM utilisation >= {run['target_utilisation']:g}. The VLM's bound for this image is "
        f"{_num(bound['images_per_s'], 1)} images/s ({bound['assumes']}).", "",
        markdown_table(
            ["clients", "VLM utilisation", "met?", "zero-overhead bound", "images/s", "VLM calls/s", "batches ok/failed",
             "batch latency p50/p95 s", "image errors", "VLM running / waiting (mean)",
             "cores: stack / machine / others"],
            [point_row(p) for p in points],
        ), "",
        "Utilisation: " + points[0]["vlm_utilisation"]["method"] + ". Zero-overhead bound: the utilisation "
        "the same clients would get from a service that costs nothing (each batch at the VLM the moment it is "
        "sent, answered the moment its last image is done), run on the stand-in's own scheduler: a batch's "
        "last, longest images leave slots idle that no service can fill. Images/s: images read without error in "
        "batches answered inside the window. Cores: CPU seconds per second of window, of the stack and this "
        "load generator, of the whole machine (/proc/stat), and the difference (other work on the machine).",
    ]
    roles = sorted({role for p in points for role in p["summary"]["cpu_per_image_s"]})
    parts += ["", "## CPU seconds per image, by process", "", markdown_table(
        ["clients", *roles, "all"],
        [[str(p["clients"]), *(_num(p["summary"]["cpu_per_image_s"].get(role), 4) for role in roles),
          _num(p["summary"]["cpu_total_per_image_s"], 4)] for p in points],
    )]
    return "\n".join(parts) + "\n"


def point_row(point: dict) -> list[str]:
    summary = point["summary"]
    latency = summary["batch_latency_s"]
    return [
        str(point["clients"]),
        f"**{_num(summary['vlm_utilisation'], 3)}**",
        "yes" if summary["target_met"] else "no",
        _num(summary["ideal_utilisation"], 3),
        _num(summary["images_per_s"], 1),
        _num(summary["vlm_calls_per_s"], 1),
        f"{summary['batches']['ok']}/{summary['batches']['failed']}",
        f"{_num(latency['p50'])}/{_num(latency['p95'])}",
        str(summary["image_errors"]) + "".join(f", {kind}: {e['count']} batches"
                                               for kind, e in summary["batch_errors"].items()),
        f"{_num(summary['vlm_mean_running'], 1)} / {_num(summary['vlm_mean_waiting'], 1)}",
        " / ".join(_num(summary[key]) for key in ("stack_cores", "machine_busy_cores", "other_cores")),
    ]
