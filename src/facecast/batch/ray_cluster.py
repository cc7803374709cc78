"""``facecast batch --ray ADDRESS``: the batch job on a Ray cluster (Ray Data, an actor pool per device).

Each actor loads the model once and animates blocks of clips with the same cross-file batching as the local
job; outputs go straight to their paths, so the output folder must be on storage every node can reach (NFS, a
mounted bucket). Finished outputs are skipped before the job is submitted, so a rerun resumes.
"""

from __future__ import annotations

from pathlib import Path

from facecast.batch.local import BatchReport, Failure, Job, is_done


class _Animator:
    """A Ray actor: one model, many blocks of clips."""

    def __init__(self, model_path: str | None, formats: list[str], fps: float, device: str, blinks: bool) -> None:
        from facecast.model import load_model

        self.model = load_model(model_path, device=device)
        self.formats, self.fps, self.blinks = formats, fps, blinks

    def __call__(self, rows: dict) -> dict:
        from facecast.batch.local import run_batch

        jobs = [
            Job(Path(a), Path(s), [e for e in str(emo).split(";") if e], root=Path(r) if r else None)
            for a, s, emo, r in zip(rows["audio"], rows["stem"], rows["emotion"], rows["root"], strict=True)
        ]
        report = run_batch(self.model, jobs, self.formats, self.fps, workers=2, blinks=self.blinks, progress=False)
        errors = {f.output: f.error for f in report.failed}
        stopped = report.stopped or ""
        return {
            "index": list(rows["index"]),
            "error": [errors.get(str(j.stem)) or ("" if is_done(j, self.formats) else stopped) for j in jobs],
            "frames": [report.frames] + [0] * (len(jobs) - 1),
        }


def run_batch_ray(
    address: str,
    model_path: str | None,
    jobs: list[Job],
    formats: list[str],
    fps: float = 30.0,
    actors: int = 1,
    gpus_per_actor: float = 0.0,
    device: str = "auto",
    blinks: bool = True,
    block_size: int = 16,
) -> BatchReport:
    """Run the jobs on the Ray cluster at ``address`` (``"local"`` starts one in this process); a failed entry is
    reported with its manifest line, as in :func:`~facecast.batch.local.run_batch`."""
    import ray

    if not ray.is_initialized():
        ray.init(address=None if address == "local" else address, ignore_reinit_error=True, log_to_driver=False)
    report = BatchReport()
    todo = [j for j in jobs if not is_done(j, formats)]
    report.skipped = len(jobs) - len(todo)
    if not todo:
        return report
    items = [{"index": k, "audio": str(j.audio), "stem": str(j.stem), "emotion": ";".join(j.emotion),
              "root": "" if j.root is None else str(j.root)} for k, j in enumerate(todo)]  # fmt: skip
    ds = ray.data.from_items(items, override_num_blocks=max(1, len(items) // block_size))
    results = ds.map_batches(
        _Animator,
        fn_constructor_kwargs={
            "model_path": None if model_path is None else str(model_path),
            "formats": list(formats),
            "fps": fps,
            "device": device,
            "blinks": blinks,
        },
        batch_size=block_size,
        batch_format="numpy",
        concurrency=actors,
        num_gpus=gpus_per_actor or None,
    ).take_all()
    for row in results:
        if row["error"]:
            report.failed.append(Failure.of(todo[int(row["index"])], str(row["error"])))
        else:
            report.done += 1
        report.frames += int(row["frames"])
    return report
