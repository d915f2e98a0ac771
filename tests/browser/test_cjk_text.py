"""Chinese names are drawn as Chinese in the browser, not as boxes: with no CJK font on the
machine every Chinese character falls back to the same empty box, so two different characters
look alike. ``scripts/bootstrap`` installs one (Debian ``fonts-noto-cjk``)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from playwright.async_api import Browser

from tests.browser.conftest import new_tab

STYLE = Path(__file__).resolve().parents[2] / "agent_ui" / "static" / "style.css"

DRAW = """([font, text]) => {
  const canvas = document.createElement("canvas");
  canvas.width = 48; canvas.height = 48;
  const ctx = canvas.getContext("2d");
  ctx.font = font; ctx.fillText(text, 4, 36);
  return Array.from(ctx.getImageData(0, 0, 48, 48).data).join(",");
}"""


@pytest.mark.asyncio
async def test_two_chinese_characters_of_a_name_do_not_look_alike(browser: Browser) -> None:
    body = re.search(r"body \{[^}]*font: ([^;]+);", STYLE.read_text(encoding="utf-8"))
    assert body is not None, "the stylesheet's body font"
    font = body[1].replace("/1.4", "").replace("13px", "32px")  # the desk's own font stack
    tab = await new_tab(browser)
    await tab.page.set_content("<!doctype html><meta charset=utf-8><body></body>")
    wang, zong = [await tab.page.evaluate(DRAW, [font, ch]) for ch in ("王", "总")]
    blank = await tab.page.evaluate(DRAW, [font, " "])
    assert wang != blank
    assert wang != zong, "Chinese characters render as the same box: no CJK font installed"
