"""LLMs for the `assetdb ask` tests, registered through llm's own plugin hook
(`register_models`), as an llm plugin would: a vision model that decodes and reports its
attachments, a model that takes no images, and models that fail, at once, midway, or by
hanging. None reaches a network."""

from __future__ import annotations

import io
import json
import time

import llm
from PIL import Image

PLUGIN_NAME = "assetdb-test-models"


class VisionCheck(llm.Model):
    """Decodes every attachment (failing if one is not an image) and answers, in several
    chunks, with what it saw and the prompt it got."""

    model_id = "vision-check"
    can_stream = True
    attachment_types = frozenset({"image/jpeg", "image/png"})

    def execute(self, prompt, stream, response, conversation=None):  # noqa: ANN001, ANN201
        seen = []
        for a in prompt.attachments:
            with Image.open(io.BytesIO(a.content)) as img:
                img.load()
                seen.append({"type": a.type, "format": img.format, "size": list(img.size)})
        yield "I looked at "
        yield f"{len(seen)} images. "
        yield json.dumps({"images": seen, "prompt": prompt.prompt})


class TextOnly(llm.Model):
    model_id = "text-only"
    can_stream = True

    def execute(self, prompt, stream, response, conversation=None):  # noqa: ANN001, ANN201
        yield json.dumps({"attachments": len(prompt.attachments), "prompt": prompt.prompt})


class FailsAtOnce(llm.Model):
    model_id = "fails-at-once"
    can_stream = True

    def execute(self, prompt, stream, response, conversation=None):  # noqa: ANN001, ANN201
        raise llm.ModelError("503 Service Unavailable: the provider is down")
        yield ""  # a generator, as real models are


class FailsMidway(llm.Model):
    model_id = "fails-midway"
    can_stream = True

    def execute(self, prompt, stream, response, conversation=None):  # noqa: ANN001, ANN201
        yield "The part number is "
        raise llm.ModelError("connection reset by the provider")


class Hangs(llm.Model):
    model_id = "hangs"
    can_stream = True

    def execute(self, prompt, stream, response, conversation=None):  # noqa: ANN001, ANN201
        time.sleep(5)
        yield "too late"


@llm.hookimpl
def register_models(register):  # noqa: ANN001, ANN201
    for model in (VisionCheck(), TextOnly(), FailsAtOnce(), FailsMidway(), Hangs()):
        register(model)
