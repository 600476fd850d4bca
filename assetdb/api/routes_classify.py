"""Classify an uploaded image against labels (zero-shot)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, File, Form, Request, UploadFile
from pydantic import BaseModel

from assetdb.api.deps import EncoderDep, read_image_upload
from assetdb.classify.one_image import classify_image
from assetdb.classify.zeroshot import (
    DEFAULT_TEMPLATES,
    MAX_LABEL_CHARS,
    MAX_TEMPLATE_CHARS,
    check_labels,
    check_templates,
)
from assetdb.search.filters import split_list

router = APIRouter(prefix="/api", tags=["classify"])

# Tighter than the CLI's: every label x template pair is one text through the model.
API_MAX_LABELS = 100
API_MAX_TEMPLATES = 10


class LabelScore(BaseModel):
    label: str
    probability: float


class Classification(BaseModel):
    labels: list[LabelScore]
    model: str


@router.post("/classify", response_model=Classification, summary="Classify an uploaded image")
def classify(
    request: Request, encoder: EncoderDep,
    file: Annotated[UploadFile, File(description="the image")],
    labels: Annotated[str, Form(
        max_length=API_MAX_LABELS * (MAX_LABEL_CHARS + 2),
        description=f"comma-separated labels, e.g. cat,dog,car (at most {API_MAX_LABELS}, "
                    f"each at most {MAX_LABEL_CHARS} characters)")],
    templates: Annotated[list[str], Form(
        description=f"prompt templates with one {{}} where the label goes (at most "
                    f"{API_MAX_TEMPLATES}, each at most {MAX_TEMPLATE_CHARS} characters); "
                    "default 'a photo of a {}.'")] = [],  # noqa: B006
) -> Classification:
    """Zero-shot: which label's text is closest to the image; probabilities sum to 1. Example:
    `curl -F file=@pet.jpg -F labels=cat,dog http://127.0.0.1:8000/api/classify`"""
    # Checked before the image is decoded: a bad request costs nothing.
    label_list = check_labels(split_list([labels]), max_count=API_MAX_LABELS)
    template_list = check_templates(templates or DEFAULT_TEMPLATES, max_count=API_MAX_TEMPLATES)
    image = read_image_upload(request, file, encoder.image_size)
    ranked = classify_image(encoder, image, label_list, template_list)
    return Classification(labels=[LabelScore(**r) for r in ranked], model=encoder.name)
