"""Classify an uploaded image against labels (zero-shot)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, File, Form, UploadFile
from pydantic import BaseModel

from assetdb.api.deps import ConfigDep, EncoderDep, read_upload
from assetdb.classify.one_image import classify_image
from assetdb.classify.zeroshot import DEFAULT_TEMPLATES
from assetdb.embedding.images import load_image_bytes
from assetdb.search.filters import split_list

router = APIRouter(prefix="/api", tags=["classify"])


class LabelScore(BaseModel):
    label: str
    probability: float


class Classification(BaseModel):
    labels: list[LabelScore]
    model: str


@router.post("/classify", response_model=Classification, summary="Classify an uploaded image")
def classify(
    encoder: EncoderDep, config: ConfigDep,
    file: Annotated[UploadFile, File(description="the image")],
    labels: Annotated[str, Form(description="comma-separated labels, e.g. cat,dog,car")],
    templates: Annotated[list[str], Form(description="prompt templates with {}; "
                                                     "default 'a photo of a {}.'")] = [],  # noqa: B006
) -> Classification:
    """Zero-shot: which label's text is closest to the image; probabilities sum to 1. Example:
    `curl -F file=@pet.jpg -F labels=cat,dog http://127.0.0.1:8000/api/classify`"""
    image = load_image_bytes(read_upload(file, config), encoder.image_size)
    ranked = classify_image(encoder, image, split_list([labels]), templates or DEFAULT_TEMPLATES)
    return Classification(labels=[LabelScore(label=label, probability=p) for label, p in ranked],
                          model=encoder.name)
