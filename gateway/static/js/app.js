// The page's entry point: the tool tabs, the API key box, and the three tools.

import { storedKey, storeKey } from "./api.js";
import { setUpOcr } from "./ocr.js";
import { setUpParse } from "./parse.js";
import { setUpTabs } from "./tabs.js";

const $ = (id) => document.getElementById(id);

/** The API key box: saved in localStorage, opened (and focused) when a call needs a key. */
function setUpKey() {
  const box = $("key-box");
  const field = $("key-input");
  const showState = () => {
    $("key-state").textContent = storedKey() ? "set" : "not set";
  };
  field.value = storedKey();
  showState();
  $("key-form").addEventListener("submit", (event) => {
    event.preventDefault();
    storeKey(field.value.trim());
    showState();
    box.open = false;
  });
  $("key-forget").addEventListener("click", () => {
    storeKey("");
    field.value = "";
    showState();
  });
  return function askForKey() {
    box.open = true;
    field.focus();
    field.select();
  };
}

// A file dropped beside the drop zone would make the browser leave the page to open it.
for (const type of ["dragover", "drop"]) {
  window.addEventListener(type, (event) => event.preventDefault());
}

setUpTabs(document.querySelector("main > [role=tablist]"));
const onAuthError = setUpKey();
setUpParse({ onAuthError });
setUpOcr({ onAuthError });
document.body.dataset.ready = "true"; // for tests: the page's scripts have run
