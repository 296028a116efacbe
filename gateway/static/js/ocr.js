// The "Recognize" and "Extract" tabs: one image to the GLM-OCR-compatible routes
// /api/ocr/recognize (text, formula or table) and /api/ocr/extract (a JSON Schema filled).

import { describe, postFormJson } from "./api.js";
import { showFormula, showMarkdown } from "./markdown.js";
import { EXAMPLE_SCHEMAS } from "./schemas.js";

const $ = (id) => document.getElementById(id);

function seconds(time) {
  return typeof time === "number" ? ` in ${time.toFixed(2)} s` : "";
}

/** What both tabs share: the submit, the busy state, the status and error lines. `run`
 * makes the form and shows the answer; its errors are shown here. */
function setUpOcrForm(name, { onAuthError, check, run }) {
  const button = $(`${name}-start`);
  const status = $(`${name}-status`);
  const errorBox = $(`${name}-error`);

  function showError(message) {
    errorBox.textContent = message;
    errorBox.hidden = !message;
  }

  $(`${name}-form`).addEventListener("submit", async (event) => {
    event.preventDefault();
    const problem = check();
    showError(problem);
    if (problem) return;
    button.disabled = true;
    status.textContent = "Working…";
    try {
      status.textContent = await run();
    } catch (error) {
      status.textContent = "";
      showError(describe(error));
      if (error.kind === "auth") onAuthError();
    } finally {
      button.disabled = false;
    }
  });
  return { showError };
}

function imageOf(name) {
  return $(`${name}-image`).files[0] || null;
}

function setUpRecognize({ onAuthError }) {
  setUpOcrForm("recognize", {
    onAuthError,
    check: () => (imageOf("recognize") ? "" : "Choose an image first."),
    async run() {
      const form = new FormData();
      const task = $("recognize-task").value;
      form.append("image", imageOf("recognize"));
      form.append("task", task);
      $("recognize-result").hidden = true;
      const answer = await postFormJson("/api/ocr/recognize", form);
      const text = answer.text ?? "";
      const rendered = $("recognize-rendered");
      if (answer.task === "formula" || task === "formula") showFormula(rendered, text);
      else showMarkdown(rendered, text, {});
      $("recognize-text").textContent = text;
      $("recognize-result").hidden = false;
      return `Recognized as ${answer.task || task}${seconds(answer.time)}.`;
    },
  });
}

function setUpExtract({ onAuthError }) {
  const picker = $("extract-example");
  const schemaBox = $("extract-schema");
  for (const name of Object.keys(EXAMPLE_SCHEMAS)) picker.append(new Option(name, name));
  const fill = () => {
    schemaBox.value = JSON.stringify(EXAMPLE_SCHEMAS[picker.value], null, 2);
  };
  picker.addEventListener("change", fill);
  fill();

  function showRaw(raw) {
    $("extract-raw").textContent = raw ?? "";
    $("extract-raw-box").hidden = raw === undefined || raw === null;
  }

  setUpOcrForm("extract", {
    onAuthError,
    check() {
      if (!imageOf("extract")) return "Choose an image first.";
      try {
        JSON.parse(schemaBox.value);
        return "";
      } catch (error) {
        return `The schema is not valid JSON: ${error.message}`;
      }
    },
    async run() {
      const form = new FormData();
      form.append("image", imageOf("extract"));
      form.append("schema", schemaBox.value);
      $("extract-result").hidden = true;
      showRaw(null);
      try {
        const answer = await postFormJson("/api/ocr/extract", form);
        $("extract-data").textContent = JSON.stringify(answer.data, null, 2);
        $("extract-result").hidden = false;
        showRaw(answer.raw);
        return `Extracted${seconds(answer.time)}.`;
      } catch (error) {
        showRaw(error.body?.raw); // a 422 whose answer did not fit the schema carries it
        throw error;
      }
    },
  });
}

export function setUpOcr(options) {
  setUpRecognize(options);
  setUpExtract(options);
}
