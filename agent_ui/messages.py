"""A socket message read as a pydantic model, refused in words the page shows."""

from __future__ import annotations

from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError

from agent_ui.ws import UiError

Model = TypeVar("Model", bound=BaseModel)


def parsed(model: type[Model], message: dict[str, Any], refused: str = "") -> Model:
    """``message`` as ``model``, or a UiError naming the first bad field (after ``refused``)."""
    try:
        return model.model_validate(message)
    except ValidationError as exc:
        error = exc.errors(include_url=False, include_input=False)[0]
        where = ".".join(str(part) for part in error["loc"]) or "message"
        raise UiError(f"{refused}{where}: {error['msg']}") from None
