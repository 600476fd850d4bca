"""The LLM side of `assetdb ask`, through Simon Willison's `llm` library (the `ask` extra).

Any model an llm plugin provides (OpenAI, Anthropic, Gemini, local Ollama through
llm-ollama, ...) answers; keys, aliases and the default model come from llm's own
configuration (`llm keys set`, `llm models default`, LLM_USER_PATH). Images go as llm
attachments to a model that takes them (`model.attachment_types`); any other model gets
the descriptions only, and the prompt says so.

Every failure becomes an AskError with a message that says what to do, and the answer is
read one chunk ahead: a caller prints nothing until the first chunk has arrived, so a
model that fails at once leaves no half answer behind.
"""

from __future__ import annotations

import io
import queue
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from assetdb.ask.pack import ContextPack
from assetdb.ask.retrieve import AskError, UserImage
from assetdb.config import read_setting
from assetdb.errors import AssetdbError

if TYPE_CHECKING:
    from assetdb.config import Settings

# Sources go as JPEGs of at most this side: enough for a vision model (they scale larger
# images down themselves), and far less of the catalogue leaves the machine.
SOURCE_IMAGE_SIDE = 512
_DONE = object()


class AskTimeout(AskError):
    pass


class ProviderError(AskError):
    """The model (or its provider) failed while answering."""


def require_llm() -> Any:  # noqa: ANN401 - the llm module
    try:
        import llm
    except ImportError:
        raise AskError("`assetdb ask` needs the llm library: pip install 'assetdb[ask]' "
                       "(then a plugin for your model, e.g. `llm install llm-ollama`)") from None
    return llm


def resolve_model(name: str | None) -> Any:  # noqa: ANN401 - llm.Model
    """The llm model to ask: `name`, else ASSETDB_ASK_MODEL, else llm's own default, which
    must have been set (`llm models default NAME`): llm's built-in fallback would send
    the catalogue to a hosted model nobody chose."""
    llm = require_llm()
    chosen = name or read_setting("ASSETDB_ASK_MODEL")
    if not chosen:
        default_file = llm.user_dir() / "default_model.txt"
        if not default_file.is_file() or not default_file.read_text().strip():
            raise AskError("no LLM is configured: pass --llm MODEL, set ASSETDB_ASK_MODEL, "
                           "or choose llm's default with `llm models default MODEL` "
                           "(`llm models` lists those your plugins provide)")
        chosen = default_file.read_text().strip()
    try:
        model = llm.get_model(chosen)
    except llm.UnknownModelError:
        raise AskError(f"unknown LLM {chosen!r}: `llm models` lists the models your llm "
                       "plugins provide (e.g. `llm install llm-ollama` for local models)"
                       ) from None
    if getattr(model, "needs_key", None):
        try:
            key = model.get_key()
        except llm.NeedsKeyException:
            key = None
        if not key:
            raise AskError(f"the LLM {model.model_id!r} needs an API key: "
                           f"`llm keys set {model.needs_key}`"
                           + (f" or set {model.key_env_var}" if model.key_env_var else ""))
    return model


def takes_images(model: Any) -> bool:  # noqa: ANN401
    return "image/jpeg" in (getattr(model, "attachment_types", None) or set())


def _jpeg(img: Any) -> bytes:  # noqa: ANN401 - PIL.Image.Image
    out = io.BytesIO()
    img.convert("RGB").save(out, "JPEG", quality=85)
    return out.getvalue()


def attachments(settings: Settings, pack: ContextPack, user_image: UserImage | None,
                model: Any) -> list[Any]:  # noqa: ANN401
    """The images, in the order the prompt lists them: the user's image (as sent, when
    the model takes its type, else as a JPEG), then each source's as a JPEG thumbnail made
    from the verified catalogue file (assetdb.catalog.thumbnails: nothing outside the
    catalogue is read)."""
    if not takes_images(model):
        return []
    from assetdb.catalog.thumbnails import thumbnail

    llm = require_llm()
    out = []
    if user_image is not None:
        if user_image.query.mime in model.attachment_types:
            out.append(llm.Attachment(type=user_image.query.mime, content=user_image.data))
        else:
            out.append(llm.Attachment(type="image/jpeg", content=_jpeg(user_image.pixels)))
    for source in pack.sources:
        try:
            path, _ = thumbnail(settings, source.id, SOURCE_IMAGE_SIDE)
        except AssetdbError as exc:  # the file went missing or changed since ingest
            raise AskError(f"the image of source asset {source.id} cannot be sent: {exc}"
                           ) from None
        out.append(llm.Attachment(type="image/jpeg", content=path.read_bytes()))
    return out


@dataclass
class Answer:
    """A started answer: `first` arrived already; `rest` yields the others."""

    model: str
    images_attached: int
    note: str | None
    first: str
    rest: Iterator[str]

    def chunks(self) -> Iterator[str]:
        yield self.first
        yield from self.rest


def _describe(exc: BaseException) -> str:
    text = str(exc).strip() or type(exc).__name__
    return text.splitlines()[0][:500]


def _pump(response: Any, out: queue.Queue) -> None:  # noqa: ANN401
    try:
        for chunk in response:
            out.put(("chunk", chunk))
        out.put(("done", None))
    except BaseException as exc:  # noqa: BLE001 - handed to the reader, who raises it
        out.put(("error", exc))


def _chunks(out: queue.Queue, timeout: float, model_id: str) -> Iterator[str]:
    llm = require_llm()
    while True:
        try:
            kind, value = out.get(timeout=timeout)
        except queue.Empty:
            raise AskTimeout(f"the LLM {model_id!r} sent nothing for {timeout:g} s "
                             "(ASSETDB_ASK_TIMEOUT)") from None
        if kind == "done":
            return
        if kind == "error":
            if isinstance(value, llm.NeedsKeyException):
                raise AskError(f"the LLM {model_id!r} needs an API key: {value}")
            raise ProviderError(f"the LLM {model_id!r} failed: {_describe(value)}")
        if value:
            yield value


def start_answer(settings: Settings, pack: ContextPack, model: Any,  # noqa: ANN401
                 user_image: UserImage | None = None,
                 timeout: float | None = None) -> Answer:
    """Send the pack to the model and wait for the first chunk of its answer (raising
    AskError, AskTimeout or ProviderError when none comes); the rest streams from the
    returned Answer, whose iteration raises the same errors."""
    with_images = takes_images(model)
    files = attachments(settings, pack, user_image, model)
    timeout = timeout if timeout is not None else read_setting("ASSETDB_ASK_TIMEOUT")
    try:
        response = model.prompt(pack.prompt(with_images=with_images),
                                attachments=files, stream=True)
    except Exception as exc:
        raise ProviderError(f"the LLM {model.model_id!r} refused the prompt: "
                            f"{_describe(exc)}") from None
    # The model runs in a thread of its own, so that a provider that hangs is answered
    # with a timeout instead of holding the caller for ever.
    out: queue.Queue = queue.Queue()
    threading.Thread(target=_pump, args=(response, out), daemon=True,
                     name="assetdb-ask").start()
    stream = _chunks(out, timeout, model.model_id)
    first = next(stream, None)
    if first is None:
        raise ProviderError(f"the LLM {model.model_id!r} gave an empty answer")
    note = None if with_images else (
        f"the LLM {model.model_id!r} cannot take images: it was given the sources' "
        "descriptions only")
    return Answer(model=model.model_id, images_attached=len(files), note=note, first=first,
                  rest=stream)
