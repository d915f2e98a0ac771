// The case page: a highlighted piece of evidence plays the call's recording from its moment.
"use strict";

(() => {
  function play(mark) {
    const audio = document.getElementById(mark.dataset.audio);
    const start = Number(mark.dataset.start);
    if (!audio || !Number.isFinite(start)) return;
    audio.currentTime = start;
    const playing = audio.play();
    if (playing) playing.catch(() => {}); // no sound device, or not allowed: the seek still shows
  }
  for (const mark of document.querySelectorAll("mark.evidence")) {
    mark.addEventListener("click", () => play(mark));
    mark.addEventListener("keydown", (event) => {
      if (event.key === "Enter" || event.key === " ") { event.preventDefault(); play(mark); }
    });
  }
})();
