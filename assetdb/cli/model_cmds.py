"""`assetdb model`: model files (export to ONNX)."""

from __future__ import annotations

from pathlib import Path

import click

from assetdb.cli.common import json_option
from assetdb.cli.output import kv_lines, print_json


@click.group()
def model() -> None:
    """Model files: export a CLIP model to ONNX for fast CPU search and ingest.

    \b
    Examples:
      assetdb model export clip-ViT-B-32 --out ~/models/clip-onnx
    """


@model.command("export")
@click.argument("source")
@click.option("-o", "--out", type=click.Path(path_type=Path, file_okay=False), required=True,
              help="The folder to write (new or empty; an earlier export with --overwrite).")
@click.option("--int8", is_flag=True,
              help="Quantize to int8: smaller and faster on CPU, vectors move a little "
                   "(cosine >= 0.99). Its own model identity unless --same-identity.")
@click.option("--calibrate-images", type=click.Path(path_type=Path, exists=True,
                                                    file_okay=False),
              help="With --int8: static quantization calibrated on these images (your own, "
                   "a few hundred); without it, dynamic quantization.")
@click.option("--same-identity", is_flag=True,
              help="With --int8: record the int8 vectors under the source model's identity, "
                   "so they mix with its fp32 vectors in one catalogue (your choice).")
@click.option("--check-images", type=click.Path(path_type=Path, exists=True, file_okay=False),
              help="Also compare torch and ONNX vectors on these images.")
@click.option("--overwrite", is_flag=True, help="Replace an earlier export in --out.")
@json_option
def export(source: str, out: Path, int8: bool, calibrate_images: Path | None,
           same_identity: bool, check_images: Path | None, overwrite: bool,
           as_json: bool) -> None:
    """Export SOURCE (a sentence-transformers CLIP name or folder) to ONNX in --out.

    Then ASSETDB_MODEL=OUT uses it through ONNX Runtime: no torch in the process, a
    search answers in about a second, and ingest runs faster on CPU. An fp32 export
    makes the source model's vectors (checked: cosine >= 0.9999) and shares its identity,
    so a catalogue embedded with either is searched with the other. Use it with
    `ASSETDB_MODEL=~/models/clip-onnx assetdb search "red sneakers"`.

    \b
    Examples:
      assetdb model export clip-ViT-B-32 --out ~/models/clip-onnx
      assetdb model export clip-ViT-B-32 --out ~/models/clip-int8 --int8
      assetdb model export ./my-clip --out ./my-clip-int8 --int8 --calibrate-images ~/Pictures
    """
    from assetdb.embedding.onnx_export import ExportError
    from assetdb.embedding.onnx_export import export as run_export

    if (calibrate_images or same_identity) and not int8:
        raise ExportError("--calibrate-images and --same-identity go with --int8")
    calibration = _images_in(calibrate_images) if calibrate_images else []
    if calibrate_images and not calibration:
        raise ExportError(f"no images in {calibrate_images}")
    checks = _images_in(check_images) if check_images else []
    report = run_export(source, out, int8=int8, calibration=calibration,
                        same_identity=same_identity, check_files=checks, overwrite=overwrite,
                        log=lambda m: click.echo(m, err=True))
    if as_json:
        print_json(report.as_dict())
        return
    kv_lines([("out", report.out), ("identity", report.identity),
              ("precision", report.precision), ("dimension", report.dimension),
              ("min cosine vs torch, images", f"{report.image_min_cosine:.6f}"),
              ("min cosine vs torch, texts", f"{report.text_min_cosine:.6f}"),
              ("size", f"{sum(report.files.values()) / 1e6:.1f} MB"),
              ("use it", f"ASSETDB_MODEL={report.out}")])


def _images_in(folder: Path, limit: int = 500) -> list[Path]:
    """Up to `limit` image files under `folder`, in name order."""
    suffixes = {".jpg", ".jpeg", ".png", ".webp", ".bmp", ".tif", ".tiff", ".gif"}
    found = sorted(p for p in folder.expanduser().rglob("*")
                   if p.is_file() and p.suffix.lower() in suffixes)
    return found[:limit]
