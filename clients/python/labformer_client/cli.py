"""`labformer`: the command line over `Client`.

Exit codes (also in README.md): 0 ok, 1 unexpected error, 2 usage, 3 authentication/permission,
4 not found, 5 invalid input (refused request, invalid dataset), 6 job failed or cancelled,
7 timeout, 8 server or network error.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Callable, Sequence
from typing import Any

from labformer_client.client import MiB, Client, __version__
from labformer_client.errors import InvalidInput, LabformerError

EXIT_OK, EXIT_ERROR, EXIT_USAGE, EXIT_AUTH, EXIT_NOT_FOUND, EXIT_INVALID, EXIT_JOB_FAILED, EXIT_TIMEOUT, EXIT_SERVER = (
    0, 1, 2, 3, 4, 5, 6, 7, 8)


class _Progress:
    """A tqdm bar on stderr when tqdm is installed and wanted; otherwise nothing."""

    def __init__(self, enabled: bool, total: float, desc: str, unit: str = "B") -> None:
        self.bar = None
        if not enabled:
            return
        try:
            from tqdm import tqdm
        except ImportError:
            return
        scale = unit == "B"
        self.bar = tqdm(total=total, desc=desc, unit=unit, unit_scale=scale, unit_divisor=1024 if scale else 1000,
                        file=sys.stderr, dynamic_ncols=True, leave=False)

    def to(self, value: float, postfix: str | None = None) -> None:
        if self.bar is not None:
            self.bar.n = value
            if postfix:
                self.bar.set_postfix_str(postfix, refresh=False)
            self.bar.refresh()

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


# The files of a job as its page names them (the API's `download_kind`): predictions is the CSV.
DOWNLOAD_KINDS = ("model", "model-optimized", "predictions", "evaluation", "evaluation-optimized", "attention",
                  "embeddings", "projection", "metrics", "report", "log", "checkpoint")


def _download_kind(text: str) -> str:
    if text not in DOWNLOAD_KINDS:
        raise argparse.ArgumentTypeError(f"{text!r} is not a download kind; choose one of {', '.join(DOWNLOAD_KINDS)}")
    return text


def _json_arg(text: str) -> Any:
    """JSON given inline or as @file."""
    if text.startswith("@"):
        with open(text[1:], encoding="utf-8") as fh:
            text = fh.read()
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise argparse.ArgumentTypeError(f"not JSON: {exc}") from exc


def _hp(text: str) -> tuple[str, Any]:
    key, sep, value = text.partition("=")
    if not sep or not key:
        raise argparse.ArgumentTypeError("expected KEY=VALUE")
    try:
        return key, json.loads(value)
    except json.JSONDecodeError:
        return key, value


def _out(args: argparse.Namespace, obj: Any, human: Callable[[Any], str]) -> None:
    print(json.dumps(obj, indent=2, default=str) if args.json else human(obj))


def _job_line(j: dict) -> str:
    phase = (f"  [{j['phase']} {j.get('phase_index')}/{j.get('phase_count')}]"
             if j.get("status") == "running" and j.get("phase") else "")
    return (f"{j['id']:>7}  {j['status']:<10} {j.get('progress', 0):>5.0%}  {j['task_key']:<24} {j['profile_key']:<16}"
            f" dataset {j['dataset']} ({j.get('dataset_name', '')}){phase}")


def _dataset_line(d: dict) -> str:
    lab = (d.get("lab") or {}).get("slug", "")
    return (f"{d['id']:>7}  {d['status']:<10} {d['modality']:<10} {d['name']} v{d.get('version', 1)}"
            f"  [{lab}]  {d.get('row_count') or '-'} rows")


def _progress_enabled(args: argparse.Namespace) -> bool:
    return not args.quiet and (args.progress or sys.stderr.isatty())


# --- commands --------------------------------------------------------------------------------------

def cmd_upload(client: Client, args: argparse.Namespace) -> int:
    size = os.path.getsize(args.file)
    bar = _Progress(_progress_enabled(args), size, f"upload {os.path.basename(args.file)}")

    def announce(session: dict) -> None:
        # On stderr before the first chunk, so that a killed client can be resumed by id.
        verb = "resuming" if args.upload_id else "started"
        print(f"upload {session['id']} {verb} at byte {session['offset']} of {session['size_bytes']} "
              f"(if interrupted: labformer upload --resume {session['id']} {args.file} ...)",
              file=sys.stderr, flush=True)

    try:
        dataset = client.upload_dataset(
            args.file, name=args.name, lab=args.lab, modality=args.modality, mapping=args.mapping,
            policy=args.policy, visibility=args.visibility, description=args.description,
            chunk_size=int(args.chunk_size * MiB), resume=not args.no_resume, upload_id=args.upload_id,
            progress=lambda sent, total: bar.to(sent), on_session=None if args.quiet else announce,
        )
    finally:
        bar.close()
    return _dataset_outcome(client, args, dataset)


def _what_happened(dataset: dict) -> str:
    """One line on stderr saying what an upload or a remap did, so a repeated command is never silent."""
    label = f"dataset {dataset['id']} ({dataset['name']} v{dataset.get('version', 1)})"
    if dataset.get("deduplicated"):
        return (f"{label} already reads these exact bytes with this mapping and policy: nothing new was stored "
                "(change the mapping or the policy, e.g. `labformer dataset remap`, to make a new version)")
    if dataset.get("reused_bytes"):
        return f"{label}: a new version reusing bytes already stored (nothing copied); it is validated again"
    return f"{label}: uploaded, a new version; it is validated now"


def _dataset_outcome(client: Client, args: argparse.Namespace, dataset: dict) -> int:
    print(_what_happened(dataset), file=sys.stderr)  # also with -q: a repeated upload is never silent
    if dataset.get("modality_guess"):
        print(f"modality {dataset['modality']}, told from the file: {dataset['modality_guess']} (if wrong: "
              f"`labformer dataset remap {dataset['id']} --modality ...`)", file=sys.stderr)
    if args.wait:
        flags = {k: dataset.get(k) for k in ("deduplicated", "reused_bytes")}
        dataset = {**client.wait_dataset(dataset, timeout=args.timeout), **flags}
    _out(args, dataset, _dataset_line)
    if dataset["status"] == "invalid":
        print(f"dataset {dataset['id']} is invalid: see its validation_report, then fix the mapping with "
              f"`labformer dataset remap {dataset['id']} ...`", file=sys.stderr)
        return EXIT_INVALID
    return EXIT_OK


def cmd_dataset_remap(client: Client, args: argparse.Namespace) -> int:
    mapping: dict[str, Any] | None = None
    flags = {"input_cols": args.input_col, "target_cols": args.target_col, "id_col": args.id_col,
             "group_col": args.group_col, "split_col": args.split_col, "task": args.task}
    if args.mapping is not None or any(v is not None for v in flags.values()):
        # Flags change the dataset's current mapping; --mapping replaces it first.
        mapping = dict(args.mapping) if args.mapping is not None else dict(client.dataset(args.dataset)["schema"] or {})
        for key, value in flags.items():
            if value is None:
                continue
            if value in ("", []) or value == [""]:
                mapping.pop(key, None)  # an empty value goes back to the default
            else:
                mapping[key] = value
    dataset = client.remap_dataset(args.dataset, mapping=mapping, policy=args.policy, modality=args.modality)
    return _dataset_outcome(client, args, dataset)


def cmd_submit(client: Client, args: argparse.Namespace) -> int:
    hyper = dict(args.hyperparameters or {})
    hyper.update(dict(args.hp or []))
    job = client.submit_job(args.dataset, args.task, profile=args.profile, preset=args.preset, hyperparameters=hyper,
                            device=args.device, gpu_count=args.gpus, priority=args.priority, name=args.name,
                            visibility=args.visibility, lab=args.lab, time_limit_s=args.time_limit,
                            idempotency_key=args.idempotency_key, target_col=args.target_col,
                            options=dict(args.option or []) or None)
    if args.wait:
        return _wait(client, args, job)
    _out(args, job, _job_line)
    return EXIT_OK


def _wait(client: Client, args: argparse.Namespace, job: Any) -> int:
    bar = _Progress(_progress_enabled(args), 1.0, f"job {job['id'] if isinstance(job, dict) else job}", unit="")

    def show(j: dict) -> None:
        bar.to(round(j.get("progress") or 0.0, 3), f"{j['status']} epoch {j.get('epoch', 0)}")

    try:
        final = client.wait(job, timeout=args.timeout, poll=args.poll, progress=show)
    finally:
        bar.close()
    _out(args, final, _job_line)
    if final["status"] != "succeeded":
        if final.get("error_message"):
            print(f"job {final['id']} {final['status']}: {final['error_message']}", file=sys.stderr)
        return EXIT_JOB_FAILED
    return EXIT_OK


def cmd_wait(client: Client, args: argparse.Namespace) -> int:
    return _wait(client, args, args.job)


def cmd_download(client: Client, args: argparse.Namespace) -> int:
    # -o names a folder (made if missing) unless it is an existing file's path.
    dest = args.output if os.path.isfile(args.output) else os.path.join(args.output, "")
    path = client.download(args.job, kind=args.kind, dest=dest, name=args.name)
    size = path.stat().st_size
    _out(args, {"job": int(args.job), "kind": args.kind, "path": str(path), "bytes": size},
         lambda o: f"wrote {o['path']} ({o['bytes']:,} bytes): the {o['kind']} of job {o['job']}")
    return EXIT_OK


def cmd_jobs(client: Client, args: argparse.Namespace) -> int:
    filters = {"status": args.status, "task": args.task, "dataset": args.dataset, "profile": args.profile,
               "lab": args.lab, "owner": args.owner}
    jobs = client.jobs(limit=args.limit, **filters)
    _out(args, jobs, lambda js: "\n".join(_job_line(j) for j in js) or "(no jobs)")
    return EXIT_OK


def cmd_job(client: Client, args: argparse.Namespace) -> int:
    job = client.job(args.job)
    _out(args, job, _job_line)
    return EXIT_OK


def cmd_datasets(client: Client, args: argparse.Namespace) -> int:
    filters = {"modality": args.modality, "status": args.status, "lab": args.lab, "search": args.search}
    datasets = client.datasets(limit=args.limit, **filters)
    _out(args, datasets, lambda ds: "\n".join(_dataset_line(d) for d in ds) or "(no datasets)")
    return EXIT_OK


def _upload_line(u: dict) -> str:
    return f"{u['id']}  {u['status']:<8} {u['offset']:>12}/{u['size_bytes']:<12} {u['filename']}  {u['created_at']}"


def cmd_uploads(client: Client, args: argparse.Namespace) -> int:
    uploads = list(client.list_uploads(status=args.status, limit=args.limit))
    _out(args, uploads, lambda us: "\n".join(_upload_line(u) for u in us) or "(no unfinished uploads)")
    return EXIT_OK


def cmd_cancel(client: Client, args: argparse.Namespace) -> int:
    job = client.cancel(args.job)
    _out(args, job, _job_line)
    return EXIT_OK


def _prediction_line(p: dict) -> str:
    where = f"{'line' if 'line' in p else 'record'} {p.get('line', p.get('index'))}"
    probabilities = p.get("probabilities") or {}
    score = f"  p={probabilities[str(p['prediction'])]:.3f}" if str(p["prediction"]) in probabilities else ""
    return f"{where:>12}  {p['id']:<20} {p['prediction']}{score}"


def cmd_predict(client: Client, args: argparse.Namespace) -> int:
    if args.file:
        # -o: the CSV when it ends in .csv or is an existing file, otherwise a folder (made if missing).
        path = client.predict_file(args.job, args.file, args.output, model=args.model, timeout=args.timeout, poll=args.poll,
                                   idempotency_key=args.idempotency_key)
        _out(args, {"job": args.job, "model": args.model, "path": str(path)}, lambda o: o["path"])
        return EXIT_OK
    records: list = list(args.records or []) + list(args.input or [])
    if not records:
        print("labformer: give records with --records JSON|@file, --input VALUE or a data file with --file",
              file=sys.stderr)
        return EXIT_USAGE
    predictions = client.predict(args.job, records, model=args.model, wait=args.wait, timeout=args.timeout,
                                 poll=args.poll, idempotency_key=args.idempotency_key)
    _out(args, predictions, lambda ps: "\n".join(_prediction_line(p) for p in ps))
    return EXIT_OK


def _records_arg(text: str) -> list:
    value = _json_arg(text)
    if isinstance(value, dict) and "records" in value:
        value = value["records"]
    if not isinstance(value, list):
        raise argparse.ArgumentTypeError('expected a JSON list of records (or {"records": [...]})')
    return value


# --- parser --------------------------------------------------------------------------------------

def build_parser() -> argparse.ArgumentParser:
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--url", default=argparse.SUPPRESS, help="portal root URL (default: $LABFORMER_URL)")
    common.add_argument("--token", default=argparse.SUPPRESS, help="API token (default: $LABFORMER_TOKEN)")
    common.add_argument("--json", action="store_true", default=argparse.SUPPRESS,
                        help="print JSON on stdout, for scripts")
    common.add_argument("-q", "--quiet", action="store_true", default=argparse.SUPPRESS, help="no progress bars")
    common.add_argument("--progress", action="store_true", default=argparse.SUPPRESS,
                        help="progress bars even when stderr is not a terminal")

    parser = argparse.ArgumentParser(
        prog="labformer", parents=[common],
        description="Upload datasets, launch and follow training jobs on a Labformer portal.",
        epilog="exit codes: 0 ok, 1 unexpected error, 2 usage, 3 auth/permission, 4 not found, "
               "5 invalid input, 6 job failed or cancelled, 7 timeout, 8 server or network error",
    )
    parser.add_argument("--version", action="version", version=f"labformer-client {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p = sub.add_parser("upload", parents=[common], help="upload a file as a dataset (chunked, resumable)")
    p.add_argument("file")
    p.add_argument("--name", required=True)
    p.add_argument("--lab", required=True, help="the lab to upload to: its slug or its name")
    p.add_argument("--modality", default=None,
                   help="dna, protein, smiles, particles, lightcurve, tabular (omitted: told from the file's first records)")
    p.add_argument("--mapping", type=_json_arg, default=None,
                   help='column mapping as JSON or @file, e.g. \'{"input_cols": ["sequence"], "target_cols": ["label"]}\'')
    p.add_argument("--policy", default="strict", choices=["strict", "skip"])
    p.add_argument("--visibility", default="lab", choices=["private", "lab", "public"])
    p.add_argument("--description", default="")
    p.add_argument("--chunk-size", type=float, default=8, metavar="MIB", help="chunk size in MiB (default 8)")
    p.add_argument("--no-resume", action="store_true", help="fail on a dropped connection instead of resuming")
    p.add_argument("--resume", "--upload-id", dest="upload_id", metavar="UPLOAD_ID",
                   help="continue an earlier upload (its id is printed when it starts; `labformer uploads` "
                        "lists them): only the bytes the server does not hold are sent")
    p.add_argument("--wait", action="store_true", help="wait for validation (exit 5 if the dataset is invalid)")
    p.add_argument("--timeout", type=float, default=3600)
    p.set_defaults(func=cmd_upload)

    p = sub.add_parser("dataset", parents=[common], help="change a dataset: `dataset remap ID ...`")
    dataset_sub = p.add_subparsers(dest="dataset_command", required=True, metavar="ACTION")
    p = dataset_sub.add_parser(
        "remap", parents=[common], help="read a dataset's bytes again with another mapping / policy / modality",
        description="Makes a new version of the dataset that reuses its stored bytes (nothing is uploaded) and "
                    "validates it again; flags change the current mapping (an empty value restores the default). "
                    "The same mapping and policy as an existing version returns that version.")
    p.add_argument("dataset", type=int)
    p.add_argument("--target-col", action="append", metavar="COLUMN", help="target column (repeatable)")
    p.add_argument("--input-col", action="append", metavar="COLUMN", help="input / feature column (repeatable)")
    p.add_argument("--id-col", metavar="COLUMN")
    p.add_argument("--group-col", metavar="COLUMN")
    p.add_argument("--split-col", metavar="COLUMN")
    p.add_argument("--task", help="check the targets for this task during validation")
    p.add_argument("--mapping", type=_json_arg, default=None, help="the whole new mapping as JSON or @file")
    p.add_argument("--policy", default=None, choices=["strict", "skip"])
    p.add_argument("--modality", default=None)
    p.add_argument("--wait", action="store_true", help="wait for validation (exit 5 if the dataset is invalid)")
    p.add_argument("--timeout", type=float, default=3600)
    p.set_defaults(func=cmd_dataset_remap)

    p = sub.add_parser("submit", parents=[common], help="launch a training job")
    p.add_argument("--dataset", required=True, type=int)
    p.add_argument("--task", required=True)
    p.add_argument("--profile", default="baseline")
    p.add_argument("--preset", default="tiny")
    p.add_argument("--hp", type=_hp, action="append", metavar="KEY=VALUE", help="a hyperparameter (repeatable)")
    p.add_argument("--hyperparameters", type=_json_arg, metavar="JSON", help="hyperparameters as JSON or @file")
    p.add_argument("--option", type=_hp, action="append", metavar="KEY=VALUE",
                   help="an option of the --profile, e.g. sparsity=0.7 (repeatable; GET /api/v1/profiles/ lists each profile's)")
    p.add_argument("--device", default="cpu", choices=["cpu", "gpu"])
    p.add_argument("--gpus", type=int, default=None)
    p.add_argument("--priority", type=int, default=0)
    p.add_argument("--name", default="")
    p.add_argument("--lab", default=None, help="the lab the job belongs to: its slug or its name")
    p.add_argument("--target-col", default=None, metavar="COLUMN",
                   help="the column to predict (default: the dataset's mapped target, else the task's usual name)")
    p.add_argument("--visibility", default="lab", choices=["private", "lab", "public"])
    p.add_argument("--time-limit", type=int, default=None, metavar="SECONDS")
    p.add_argument("--idempotency-key", default=None, help="make a retried submission create one job")
    p.add_argument("--wait", action="store_true", help="wait for the job to finish (exit 6 if it fails)")
    p.add_argument("--timeout", type=float, default=None)
    p.add_argument("--poll", type=float, default=2.0)
    p.set_defaults(func=cmd_submit)

    p = sub.add_parser("wait", parents=[common], help="wait for a job to finish (exit 6 if failed/cancelled)")
    p.add_argument("job", type=int)
    p.add_argument("--timeout", type=float, default=None, help="seconds (exit 7 when over)")
    p.add_argument("--poll", type=float, default=2.0)
    p.set_defaults(func=cmd_wait)

    p = sub.add_parser("download", parents=[common], help="download a job's artifact")
    p.add_argument("job", type=int)
    p.add_argument("--kind", default="model", type=_download_kind, metavar="KIND",
                   help="the file's name on the job page: " + ", ".join(DOWNLOAD_KINDS) + " (default: model)")
    p.add_argument("--name", default=None, help="a file by its stored name, e.g. evaluation.npz")
    p.add_argument("-o", "--output", default=".", metavar="DIR", help="folder to write to (made if missing)")
    p.set_defaults(func=cmd_download)

    p = sub.add_parser("predict", parents=[common], help="predict new records with a finished job's model",
                       description="Records as JSON (--records, --input) are answered inline and printed; a data "
                                   "file (--file, the training data's format and columns) is predicted on the "
                                   "server and its CSV downloaded (-o). Exit 5 names each bad record.")
    p.add_argument("job", type=int)
    source = p.add_mutually_exclusive_group()
    source.add_argument("--file", help="a data file (CSV, TSV, FASTA, SDF, Parquet) to predict into a CSV")
    source.add_argument("--records", type=_records_arg, metavar="JSON",
                        help='a JSON list (or @file) of records: {"id": ..., "input": ...} or bare strings')
    p.add_argument("--input", action="append", metavar="VALUE",
                   help="one sequence or SMILES string (repeatable; with or instead of --records)")
    p.add_argument("--model", default="baseline", choices=["baseline", "optimized"])
    p.add_argument("-o", "--output", default=".", metavar="PATH",
                   help="with --file: the CSV to write, or a folder (made if missing)")
    p.add_argument("--wait", type=float, default=20.0, help="seconds the server waits for an inline answer")
    p.add_argument("--timeout", type=float, default=3600, help="seconds to wait in all (exit 7 when over)")
    p.add_argument("--poll", type=float, default=1.0)
    p.add_argument("--idempotency-key", default=None, help="make a retried request create one prediction")
    p.set_defaults(func=cmd_predict)

    p = sub.add_parser("jobs", parents=[common], help="list jobs (newest first)")
    for name in ("status", "task", "profile", "lab", "owner"):
        p.add_argument(f"--{name}")
    p.add_argument("--dataset", type=int)
    p.add_argument("--limit", type=int, default=None)
    p.set_defaults(func=cmd_jobs)

    p = sub.add_parser("job", parents=[common], help="show one job")
    p.add_argument("job", type=int)
    p.set_defaults(func=cmd_job)

    p = sub.add_parser("datasets", parents=[common], help="list datasets (newest first)")
    for name in ("modality", "status", "lab", "search"):
        p.add_argument(f"--{name}")
    p.add_argument("--limit", type=int, default=None)
    p.set_defaults(func=cmd_datasets)

    p = sub.add_parser("uploads", parents=[common],
                       help="list your unfinished chunked uploads (id, bytes received/size, file) to resume")
    p.add_argument("--status", choices=["open", "finished", "aborted"], help="default: open")
    p.add_argument("--limit", type=int, default=None)
    p.set_defaults(func=cmd_uploads)

    p = sub.add_parser("cancel", parents=[common], help="cancel a job")
    p.add_argument("job", type=int)
    p.set_defaults(func=cmd_cancel)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    for name, default in (("url", None), ("token", None), ("json", False), ("quiet", False), ("progress", False)):
        if not hasattr(args, name):
            setattr(args, name, default)
    try:
        client = Client(args.url, args.token)
        code = args.func(client, args)
        sys.stdout.flush()  # here, not at exit: a closed pipe is then caught below
        return code
    except BrokenPipeError:
        # The reader went away (`labformer jobs | head`): what it wanted was printed. Point stdout at
        # /dev/null so the interpreter's own flush at exit finds nothing to complain about.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return EXIT_OK
    except LabformerError as exc:
        if exc.code == "usage":
            print(f"labformer: {exc.message}", file=sys.stderr)
            return EXIT_USAGE
        if args.json:
            print(json.dumps({"error": {"code": exc.code, "message": exc.message, "fields": exc.fields,
                                        "status": exc.status}}))
        print(f"labformer: {exc}", file=sys.stderr)
        return exc.exit_code
    except (OSError, InvalidInput) as exc:
        print(f"labformer: {exc}", file=sys.stderr)
        return EXIT_INVALID
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
