// Light or dark: the system's choice unless the person picked one here, kept
// in localStorage (the stylesheet reads `data-theme` on <html>).

import { readStorage, THEME_KEY, writeStorage } from "./storage.js";
import { $ } from "./ui.js";

const CHOICES = ["system", "light", "dark"];
const select = $("theme");

function apply(choice) {
  if (choice === "system") delete document.documentElement.dataset.theme;
  else document.documentElement.dataset.theme = choice;
  select.value = choice;
}

export function initTheme() {
  const stored = readStorage(THEME_KEY);
  apply(CHOICES.includes(stored) ? stored : "system");
  select.addEventListener("change", () => {
    const choice = CHOICES.includes(select.value) ? select.value : "system";
    writeStorage(THEME_KEY, choice === "system" ? null : choice);
    apply(choice);
  });
  // Another tab switched: follow it.
  window.addEventListener("storage", (event) => {
    if (event.key === THEME_KEY || event.key === null) {
      const choice = readStorage(THEME_KEY);
      apply(CHOICES.includes(choice) ? choice : "system");
    }
  });
}
