"""Item 4: Reimagine and the SDXL post-step inside a real WebUI 1.10.1, over HTTP, against the WebUI's native paths.

One WebUI instance (tiny checkpoints, CPU, started by webui_host): ours and the reference alternate after a warm-up.
a) POST /reimagine/v1/variations vs /sdapi/v1/img2img on the unCLIP checkpoint at denoise 1.0 (the native path);
b) txt2img batch count 4 on the SDXL base: the post-step in handoff mode vs the built-in refiner, same switch point;
c) model switch times at sd_checkpoints_limit 2 and 1: ours (the swap module's records, GET /reimagine/v1/swaps) vs
   the WebUI's own switch as its checkpoint dropdown makes it (POST /sdapi/v1/options), per GB too.
"""

from __future__ import annotations

import base64
import io
import os
import re
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from .harness import Sample, Settings, alternate, row
from .process_memory import process_cpu_s

ITEM = "4 WebUI"
SIZE = "tiny"
UNCLIP, SD15, BASE, REFINER = "tiny-unclip-h", "tiny-sd15", "tiny-sdxl-base", "tiny-sdxl-refiner"
SIDE, STEPS, CFG, SEED, SAMPLER, PROMPT = 128, 10, 7.0, 1234, "Euler a", "a red crown"
BATCH_COUNT, SWITCH_AT = 4, 0.8
LIMITS = (2, 1)
FAST_REPS = 3  # job rows (0.1-2 s each, bimodal when a load stalls): this many times --reps
DROPDOWN = "WebUI checkpoint dropdown (POST /sdapi/v1/options)"
ANCHOR = "anchor: 2.4 s refiner load + 3.4 s base reload per image (A1111 #13042)"
WEBUI_LOADING = re.compile(r"Loading weights \[.*?\] from (.+)")
WEBUI_LOADED = re.compile(r"(?:Weights|Model) loaded in ([0-9.]+)s")
WEBUI_REUSED = re.compile(r"Using already loaded model (.+?): done in ([0-9.]+)s")


@dataclass
class Call:
    """One HTTP job: its round-trip seconds, the log lines it wrote, the JSON answer, our swaps during it and the
    WebUI process's CPU seconds."""

    seconds: float
    log: str
    body: dict[str, Any]
    swaps: list[dict[str, Any]] = field(default_factory=list)  # from GET /reimagine/v1/swaps (the swap module)
    cpu: float | None = None


@dataclass
class Switch:
    """One model switch seen in the log: who made it, to which checkpoint, how long it took, from disk or memory."""

    source: str  # "ours" | "webui"
    target: str
    seconds: float
    action: str = ""
    from_disk: bool = False


@dataclass
class Runs:
    """Calls of one variant (warm-up first)."""

    calls: list[Call] = field(default_factory=list)


# --- HTTP and log -------------------------------------------------------------------------------------------------


def noise_png(seed: int = 0, side: int = SIDE) -> str:
    import numpy as np
    from PIL import Image

    pixels = (np.random.RandomState(seed).rand(side, side, 3) * 255).astype("uint8")
    buffer = io.BytesIO()
    Image.fromarray(pixels, "RGB").save(buffer, "PNG")
    return base64.b64encode(buffer.getvalue()).decode("ascii")


def log_size(webui) -> int:
    return webui.log_path.stat().st_size if webui.log_path.exists() else 0


def log_since(webui, offset: int) -> str:
    with open(webui.log_path, "rb") as log:
        log.seek(offset)
        return log.read().decode("utf-8", errors="replace")


def swaps_after(webui, number: int) -> dict[str, Any]:
    return webui.get(f"/reimagine/v1/swaps?after={number}").json()


def call(webui, path: str, payload: dict[str, Any]) -> Call:
    offset, last = log_size(webui), swaps_after(webui, 1 << 62)["last"]
    cpu = process_cpu_s(webui.process.pid)
    started = time.perf_counter()
    response = webui.post(path, json=payload)
    seconds = time.perf_counter() - started
    cpu = process_cpu_s(webui.process.pid) - cpu
    if response.status_code != 200:
        raise RuntimeError(f"{path} answered {response.status_code}: {response.text[:2000]}")
    return Call(seconds, log_since(webui, offset), response.json(), swaps_after(webui, last)["swaps"], cpu)


def user_job() -> dict[str, Any]:
    """A small txt2img on the user's own model: the WebUI restores a switched model lazily, in the next job."""
    return {"prompt": "", "steps": 1, "width": 64, "height": 64, "seed": SEED, "save_images": False}


def call_then_user_job(webui, path: str, payload: dict[str, Any]) -> Call:
    """One timed unit: the job, then a user job (where the native paths pay their switch back to the user's model)."""
    first = call(webui, path, payload)
    second = call(webui, "/sdapi/v1/txt2img", user_job())
    seconds, cpu = first.seconds + second.seconds, (first.cpu or 0.0) + (second.cpu or 0.0)
    return Call(seconds, first.log + second.log, first.body, first.swaps + second.swaps, cpu)


def recorder(webui, path: str, payload: dict[str, Any], then_user_job: bool) -> tuple[Callable[[], None], Runs]:
    runs = Runs()
    run_one = call_then_user_job if then_user_job else call
    return (lambda: runs.calls.append(run_one(webui, path, payload))), runs


def set_options(webui, **options: Any) -> None:
    response = webui.post("/sdapi/v1/options", json=options)
    if response.status_code != 200:
        raise RuntimeError(f"options {options} answered {response.status_code}: {response.text[:1000]}")


def set_user_model(webui, name: str) -> None:
    set_options(webui, sd_model_checkpoint=f"{name}.safetensors")


def measured(runs: Runs, settings: Settings) -> list[Call]:
    return runs.calls[settings.warmup :]


def samples(calls: list[Call]) -> list[Sample]:
    return [Sample(c.seconds, 0.0, c.cpu) for c in calls]


def switches(log: str) -> list[Switch]:
    """The WebUI's own model switches in a log slice, in order (its loader lines, 1 decimal)."""
    found, pending = [], None
    for line in log.splitlines():
        if match := WEBUI_LOADING.search(line):
            pending = os.path.basename(match[1].strip())
        elif (match := WEBUI_LOADED.search(line)) and pending:
            found.append(Switch("webui", pending, float(match[1]), from_disk=True))
            pending = None
        elif match := WEBUI_REUSED.search(line):
            found.append(Switch("webui", match[1], float(match[2])))
    return found


def webui_switches(calls: list[Call]) -> list[list[Switch]]:
    return [[s for s in switches(c.log) if s.source == "webui"] for c in calls]


def ours_switches(calls: list[Call], action: str) -> list[float]:
    """Seconds of our swaps (or restores) during the calls, as the swap module recorded them."""
    return [s["seconds"] for c in calls for s in c.swaps if s["action"] == action]


def median_or_none(values: list[float]) -> float | None:
    return statistics.median(values) if values else None


def switch_counts(calls: list[Call]) -> str:
    """'D from disk + M from memory' per job (medians of the WebUI's loader lines, which our swaps also print)."""
    per_job = webui_switches(calls)
    disk = median_or_none([sum(s.from_disk for s in job) for job in per_job]) or 0
    memory = median_or_none([sum(not s.from_disk for s in job) for job in per_job]) or 0
    return f"{disk:g} from disk + {memory:g} from memory"


def other_webuis(own_pid: int | None) -> int:
    """How many other WebUI processes run on this machine (they share its 2 cores)."""
    count = 0
    for entry in os.listdir("/proc"):
        if not entry.isdigit() or int(entry) == own_pid:
            continue
        try:
            with open(f"/proc/{entry}/cmdline", "rb") as cmdline:
                words = cmdline.read().split(b"\0")
        except OSError:
            continue
        count += any(w.endswith(b"launch.py") for w in words) and b"--data-dir" in words
    return count


# --- payloads -----------------------------------------------------------------------------------------------------


def reimagine_body(reference: str) -> dict[str, Any]:
    images = [{"image": reference, "weight": 1.0}]
    return {"model": UNCLIP, "images": images, "noise_level": 0, "n": 1, "prompt": PROMPT, "negative_prompt": ""} | {
        "seed": SEED,
        "steps": STEPS,
        "cfg_scale": CFG,
        "sampler": SAMPLER,
        "width": SIDE,
        "height": SIDE,
    }


def common_fields() -> dict[str, Any]:
    return {
        "prompt": PROMPT,
        "negative_prompt": "",
        "seed": SEED,
        "steps": STEPS,
        "cfg_scale": CFG,
        "sampler_name": SAMPLER,
        "width": SIDE,
        "height": SIDE,
        "batch_size": 1,
        "save_images": False,
    }


def native_unclip_body(reference: str, override_model: bool) -> dict[str, Any]:
    body = common_fields() | {"init_images": [reference], "denoising_strength": 1.0, "n_iter": 1}
    if override_model:  # the WebUI's own per-job model switch, restored afterwards (override_settings_restore...)
        body["override_settings"] = {"sd_model_checkpoint": f"{UNCLIP}.safetensors"}
    return body


def post_step_body() -> dict[str, Any]:
    post = {"enabled": True, "refiner": REFINER, "refiner_mode": "handoff", "switch_at": SWITCH_AT, "keep_base": False}
    return common_fields() | {"n_iter": BATCH_COUNT, "alwayson_scripts": {"Reimagine SDXL Refiner": {"args": [post]}}}


def builtin_refiner_body() -> dict[str, Any]:
    return common_fields() | {"n_iter": BATCH_COUNT, "refiner_checkpoint": REFINER, "refiner_switch_at": SWITCH_AT}


# --- a) Reimagine vs native img2img-unCLIP ----------------------------------------------------------------------


def fast(settings: Settings) -> Settings:
    return Settings(reps=settings.reps * FAST_REPS, warmup=settings.warmup, growth_jobs=settings.growth_jobs)


def run_pair(
    webui, settings: Settings, ours: tuple[str, dict], reference: tuple[str, dict], then_user_job: bool = True
) -> tuple[Runs, Runs]:
    run_ours, mine = recorder(webui, *ours, then_user_job)
    run_ref, theirs = recorder(webui, *reference, then_user_job)
    alternate(run_ours, run_ref, settings)
    return mine, theirs


def bench_unclip_no_swap(webui, settings: Settings, reference: str) -> dict[str, Any]:
    set_user_model(webui, UNCLIP)
    mine, theirs = run_pair(
        webui,
        fast(settings),
        ("/reimagine/v1/variations", reimagine_body(reference)),
        ("/sdapi/v1/img2img", native_unclip_body(reference, override_model=False)),
        then_user_job=False,
    )
    calls = measured(mine, settings)
    swapped = sum("swap_s" in c.body["timings"] for c in calls)
    sampling = median_or_none([c.body["timings"]["sampling_s"] for c in calls])
    note = (
        f"user's model = {UNCLIP} for both, so no swap is counted ({swapped} of {len(calls)} jobs swapped); "
        f"1 reference, weight 1, noise level 0, n=1, {SAMPLER}, {STEPS} steps, {SIDE}x{SIDE}, CFG {CFG:g}, same seed; "
        f"ours starts from noise, native img2img also VAE-encodes the init image; "
        f"our in-process total {median_or_none([c.body['timings']['total_s'] for c in calls]) * 1000:.1f} ms, "
        f"sampling {sampling * 1000:.1f} ms (medians)"
    )
    name = "Reimagine API vs native img2img-unCLIP, denoise 1.0 (user model = unCLIP)"
    return row(
        ITEM,
        SIZE,
        name,
        samples(calls),
        samples(measured(theirs, settings)),
        "/sdapi/v1/img2img",
        "ratio <= 1.02",
        note,
    )


def bench_unclip_swap(webui, settings: Settings, reference: str, limit: int) -> tuple[dict[str, Any], Runs, Runs]:
    set_options(webui, sd_checkpoints_limit=limit)
    set_user_model(webui, SD15)
    mine, theirs = run_pair(
        webui,
        fast(settings),
        ("/reimagine/v1/variations", reimagine_body(reference)),
        ("/sdapi/v1/img2img", native_unclip_body(reference, override_model=True)),
    )
    ours_calls, ref_calls = measured(mine, settings), measured(theirs, settings)
    note = (
        f"user's model = {SD15}: ours swaps to {UNCLIP} and restores at once; the reference is native img2img with "
        f"override_settings sd_model_checkpoint={UNCLIP} (the WebUI switches, and switches back lazily in the next "
        f"job); so each timed unit is the job + a 64x64 1-step txt2img on the user's model, for both; model switches "
        f"per unit: ours {switch_counts(ours_calls)}, native {switch_counts(ref_calls)}; same job settings as above"
    )
    name = f"Reimagine API vs native img2img-unCLIP, user model {SD15} (swap incl.), sd_checkpoints_limit {limit}"
    reference_name = "/sdapi/v1/img2img + override_settings"
    result = row(ITEM, SIZE, name, samples(ours_calls), samples(ref_calls), reference_name, "ratio <= 1.02", note)
    return result, mine, theirs


# --- b) post-step handoff vs built-in refiner, batch count 4 ------------------------------------------------------


def bench_refiner(webui, settings: Settings, limit: int) -> tuple[dict[str, Any], Runs, Runs]:
    set_options(webui, sd_checkpoints_limit=limit)
    set_user_model(webui, BASE)
    mine, theirs = run_pair(
        webui, fast(settings), ("/sdapi/v1/txt2img", post_step_body()), ("/sdapi/v1/txt2img", builtin_refiner_body())
    )
    ours_calls, ref_calls = measured(mine, settings), measured(theirs, settings)
    ours_switch = median_or_none([sum(s["seconds"] for s in c.swaps) for c in ours_calls])
    ref_switch = median_or_none([sum(s.seconds for s in job) for job in webui_switches(ref_calls)])
    note = (
        f"txt2img {BASE}, n_iter {BATCH_COUNT} x batch 1, {SIDE}x{SIDE}, {STEPS} steps, {SAMPLER}, switch {SWITCH_AT} "
        f"(both: base 8 steps, refiner 2), {REFINER}, keep_base off; the built-in leaves the refiner loaded and the "
        f"next job switches back, so each timed unit is the job + a 64x64 1-step txt2img on the base, for both; "
        f"model switches per unit: ours {switch_counts(ours_calls)} (log sum {ours_switch or 0:.3f} s), built-in "
        f"{switch_counts(ref_calls)} (log sum {ref_switch or 0:.1f} s, 0.1 s resolution); {ANCHOR}"
    )
    name = f"txt2img batch count {BATCH_COUNT}: post-step handoff vs built-in refiner, sd_checkpoints_limit {limit}"
    result = row(ITEM, SIZE, name, samples(ours_calls), samples(ref_calls), "built-in refiner", "ratio <= 1.0", note)
    return result, mine, theirs


# --- c) switch times --------------------------------------------------------------------------------------------


def checkpoint_gb(webui, name: str) -> float:
    return (webui.models_dir / f"{name}.safetensors").resolve().stat().st_size / 1e9


def timed_options(webui, **options: Any) -> float:
    started = time.perf_counter()
    set_options(webui, **options)
    return time.perf_counter() - started


def dropdown_switches(webui, settings: Settings, user: str, target: str) -> tuple[list[float], list[float], float]:
    """The WebUI's own switch, as the checkpoint dropdown makes it (POST /sdapi/v1/options): there and back, seconds.

    Also the median of a no-op options POST (HTTP + config save, no model switch): the reference's extra cost.
    """
    there, back, noop = [], [], []
    for rep in range(settings.warmup + settings.reps):
        times = (
            timed_options(webui, sd_model_checkpoint=f"{target}.safetensors"),
            timed_options(webui, sd_model_checkpoint=f"{user}.safetensors"),
            timed_options(webui, samples_save=False),
        )
        if rep >= settings.warmup:
            there.append(times[0])
            back.append(times[1])
            noop.append(times[2])
    return there, back, statistics.median(noop)


def switch_row(webui, name: str, ours: list[float], theirs: list[float], target: str, noop: float) -> dict:
    """One switch-time row: seconds (the table's ms), and seconds per GB of the checkpoint switched to in the note."""
    size = checkpoint_gb(webui, target)
    result = row(ITEM, SIZE, name, [Sample(s, 0.0) for s in ours], [Sample(s, 0.0) for s in theirs], DROPDOWN)
    result["target"] = ANCHOR
    ours_per_gb, theirs_per_gb = result["ours"]["median"] / size, result["reference"]["median"] / size
    result["note"] = (
        f"{target}: {size * 1000:.1f} MB; {ours_per_gb:.2f} s/GB ours, {theirs_per_gb:.2f} s/GB dropdown (per GB of a "
        f"tiny file is fixed costs - model build or reuse, hijack, VAE, callbacks - not disk reads); ours in-process "
        f"(API timings / log), dropdown over HTTP incl. a no-op options POST of {noop * 1000:.1f} ms; not interleaved "
        f"with ours (run right after)"
    )
    result["per_gb"] = {"ours_s_per_gb": ours_per_gb, "dropdown_s_per_gb": theirs_per_gb, "checkpoint_gb": size}
    return result


def switch_rows(webui, settings: Settings, limit: int, pair: tuple[str, str], ours: tuple[list, list]) -> list[dict]:
    """Swap user -> model and restore model -> user: ours vs the dropdown, at one sd_checkpoints_limit."""
    user, target = pair
    set_options(webui, sd_checkpoints_limit=limit)
    set_user_model(webui, user)
    there, back, noop = dropdown_switches(webui, settings, user, target)
    return [
        switch_row(webui, f"swap {user} -> {target}, sd_checkpoints_limit {limit}", ours[0], there, target, noop),
        switch_row(webui, f"restore {target} -> {user}, sd_checkpoints_limit {limit}", ours[1], back, user, noop),
    ]


def unclip_swaps(settings: Settings, mine: Runs) -> tuple[list[float], list[float]]:
    calls = measured(mine, settings)
    return [c.body["timings"].get("swap_s", 0.0) for c in calls], [
        c.body["timings"].get("restore_s", 0.0) for c in calls
    ]


def refiner_swaps(settings: Settings, mine: Runs) -> tuple[list[float], list[float]]:
    calls = measured(mine, settings)
    return ours_switches(calls, "swap"), ours_switches(calls, "restore")


# --- all of item 4 ------------------------------------------------------------------------------------------------


def bench_webui(settings: Settings) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """Start one WebUI, run a), b), c); returns (rows, facts about the run for the JSON settings)."""
    from .webui_host import running_webui

    reference = noise_png()
    with running_webui() as webui:
        own_pid = webui.process.pid if webui.process else None
        facts = {"startup_s": round(webui.startup_seconds, 1), "other_webui_processes_at_start": other_webuis(own_pid)}
        facts["loadavg_at_start"] = [round(x, 2) for x in os.getloadavg()]
        rows, unclip_rows, refiner_rows = [bench_unclip_no_swap(webui, settings, reference)], [], []
        for limit in LIMITS:
            result, mine, _ = bench_unclip_swap(webui, settings, reference, limit)
            rows.append(result)
            unclip_rows += switch_rows(webui, settings, limit, (SD15, UNCLIP), unclip_swaps(settings, mine))
        for limit in LIMITS:
            result, mine, _ = bench_refiner(webui, settings, limit)
            rows.append(result)
            refiner_rows += switch_rows(webui, settings, limit, (BASE, REFINER), refiner_swaps(settings, mine))
        facts["loadavg_at_end"] = [round(x, 2) for x in os.getloadavg()]
        facts["other_webui_processes_at_end"] = other_webuis(own_pid)
    return rows + unclip_rows + refiner_rows, facts
