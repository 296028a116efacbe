// The "Parse document" tab: choose or drop a file, send it to /layout-parsing/stream, show
// each page as its event arrives ("3 of 10 pages"), Cancel (the server stops the work when
// the connection closes), and the result's Markdown and JSON views and downloads.

import { describe, postForm, streamError } from "./api.js";
import { DocumentView } from "./document-view.js";
import { pageImagesFor } from "./page-images.js";
import { readEvents } from "./sse.js";
import { setUpTabs } from "./tabs.js";

const $ = (id) => document.getElementById(id);

/** One document's result as it grows; its Markdown and JSON as the API would give them. */
class Result {
  constructor(fileName) {
    this.fileName = fileName;
    this.logId = "";
    this.pages = [];
    this.totalPages = 0;
    this.dataInfo = null;
  }

  /** "3 of 10 pages". */
  progress() {
    const total = this.totalPages;
    return `${this.pages.length} of ${total} page${total === 1 ? "" : "s"}`;
  }

  get stem() {
    return this.fileName.replace(/\.[^.]+$/, "") || "document";
  }

  markdown() {
    return this.pages.map((page) => page.markdown?.text || "").join("\n\n");
  }

  /** /layout-parsing's envelope for the pages received. */
  envelope() {
    return {
      logId: this.logId, errorCode: 0, errorMsg: "Success",
      result: { layoutParsingResults: this.pages, dataInfo: this.dataInfo },
    };
  }
}

/** The envelope as text to read: long base64 figures shortened (the download has them). */
function readableJson(envelope) {
  return JSON.stringify(envelope, (key, value) =>
    typeof value === "string" && value.length > 200 && /^[A-Za-z0-9+/=]+$/.test(value.slice(0, 200))
      ? `<base64, ${Math.round((value.length * 3) / 4 / 1024)} KiB>`
      : value, 2);
}

function download(name, type, text) {
  const url = URL.createObjectURL(new Blob([text], { type }));
  const link = Object.assign(document.createElement("a"), { href: url, download: name });
  document.body.append(link);
  link.click();
  link.remove();
  setTimeout(() => URL.revokeObjectURL(url), 60_000);
}

export function setUpParse({ onAuthError }) {
  const input = $("parse-file");
  const dropzone = $("dropzone");
  const view = new DocumentView({ pages: $("pages"), legend: $("legend") });
  let file = null;
  let result = null;
  let controller = null;
  let pageImages = null;
  let shownPanel = "panel-pages";

  setUpTabs(document.querySelector("#result [role=tablist]"), {
    onShow: (panelId) => {
      shownPanel = panelId;
      showSource();
    },
  });

  /** The Markdown or JSON panel, when shown (not redrawn for every page otherwise). */
  function showSource() {
    if (!result) return;
    if (shownPanel === "panel-markdown") $("markdown-source").textContent = result.markdown();
    if (shownPanel === "panel-json") $("json-source").textContent = readableJson(result.envelope());
  }

  function choose(chosen) {
    if (!chosen) return;
    file = chosen;
    $("dropzone-file").textContent = `${file.name} (${Math.max(1, Math.round(file.size / 1024))} KiB)`;
    dropzone.classList.add("has-file");
    showError("");
  }

  function showError(message) {
    $("parse-error").textContent = message;
    $("parse-error").hidden = !message;
  }

  function setStatus(text, done = null, total = null) {
    $("parse-status").textContent = text;
    const bar = $("parse-progress");
    bar.hidden = total === null;
    if (total !== null) Object.assign(bar, { max: Math.max(total, 1), value: done });
  }

  function setRunning(running) {
    $("parse-start").disabled = running;
    $("parse-cancel").disabled = !running;
    $("parse-form").setAttribute("aria-busy", String(running));
  }

  function formFor(chosen) {
    const form = new FormData();
    form.append("file", chosen, chosen.name);
    const pages = $("parse-pages").value.trim();
    const dpi = $("parse-dpi").value.trim();
    if (pages) form.append("pages", pages);
    if (dpi) form.append("dpi", dpi);
    return form;
  }

  /** Shows each page of the stream as it comes; returns at the final event. */
  async function follow(response) {
    setStatus("Waiting for the first page…", 0, 1);
    for await (const { event, data } of readEvents(response)) {
      const payload = JSON.parse(data);
      if (event === "error") throw streamError(payload);
      result.logId = payload.logId || result.logId;
      $("result-log-id").textContent = result.logId;
      if (event === "page") {
        result.totalPages = payload.totalPages;
        result.pages.push(payload.result);
        view.addPage(payload.result);
        $("result").hidden = false;
        showSource();
        setStatus(result.progress(), result.pages.length, result.totalPages);
      } else if (event === "final") {
        result.dataInfo = payload.dataInfo;
        setStatus(`Done: ${result.progress()}.`);
        return;
      }
    }
    throw streamError({ errorMsg: "the connection closed before the last page" });
  }

  async function parse() {
    if (!file) {
      showError("Choose a PDF or an image first.");
      dropzone.focus();
      return;
    }
    // The last run's error and result go at once, before anything is awaited.
    const form = formFor(file);
    controller = new AbortController();
    result = new Result(file.name);
    $("result").hidden = true;
    showError("");
    setRunning(true);
    setStatus(`Sending ${file.name}…`);
    try {
      pageImages?.close();
      pageImages = await pageImagesFor(file);
      view.reset(pageImages);
      await follow(await postForm("/layout-parsing/stream", form, { signal: controller.signal }));
    } catch (error) {
      const sofar = result.pages.length ? `after ${result.progress()}` : "before the first page";
      if (error.name === "AbortError") {
        setStatus(`Cancelled ${sofar}.`);
        return;
      }
      setStatus(result.pages.length ? `Stopped ${sofar}.` : "");
      showError(describe(error) + (error.logId ? `\nRequest id (logId): ${error.logId}` : ""));
      if (error.kind === "auth") onAuthError();
    } finally {
      controller = null;
      setRunning(false);
      showSource();
    }
  }

  input.addEventListener("change", () => choose(input.files[0]));
  dropzone.addEventListener("click", () => input.click());
  dropzone.addEventListener("keydown", (event) => {
    if (event.key === "Enter" || event.key === " ") {
      event.preventDefault();
      input.click();
    }
  });
  dropzone.addEventListener("dragover", (event) => {
    event.preventDefault();
    dropzone.classList.add("dragging");
  });
  dropzone.addEventListener("dragleave", () => dropzone.classList.remove("dragging"));
  dropzone.addEventListener("drop", (event) => {
    event.preventDefault();
    dropzone.classList.remove("dragging");
    choose(event.dataTransfer.files[0]);
  });
  $("parse-form").addEventListener("submit", (event) => {
    event.preventDefault();
    if (!controller) parse();
  });
  $("parse-cancel").addEventListener("click", () => controller?.abort());
  $("download-md").addEventListener("click", () =>
    download(`${result.stem}.md`, "text/markdown;charset=utf-8", result.markdown()));
  $("download-json").addEventListener("click", () =>
    download(`${result.stem}.json`, "application/json", JSON.stringify(result.envelope(), null, 2)));
}
