// Markdown as the API gives it, drawn safely: marked (GitHub-flavoured, raw HTML tables
// kept), everything through DOMPurify, then `$$…$$` and `$…$` drawn by KaTeX, and the
// figure crops (`imgs/…` paths) pointed at their base64 JPEGs.
//
// Formulas leave marked as empty placeholders holding their TeX and are drawn after the
// sanitising: KaTeX escapes what it is given (no `trust`), and DOMPurify would strip the
// MathML annotation that keeps each formula's source for screen readers and copying.

import { Marked } from "../vendor/marked/lib/marked.esm.js";

// Classic-script builds, loaded (deferred) before this module by index.html.
const { DOMPurify, katex } = window;

function escapeAttribute(text) {
  return text.replace(/&/g, "&amp;").replace(/"/g, "&quot;").replace(/</g, "&lt;");
}

function placeholder(tex, display) {
  const tag = display ? "div" : "span";
  return `<${tag} class="${display ? "math-display" : "math-inline"}" data-tex="${escapeAttribute(tex)}"></${tag}>`;
}

const blockMath = {
  name: "blockMath",
  level: "block",
  start: (src) => src.indexOf("$$"),
  tokenizer(src) {
    const match = /^\$\$[ \t]*\n?([\s\S]+?)\n?[ \t]*\$\$[ \t]*(?:\n+|$)/.exec(src);
    if (match) return { type: "blockMath", raw: match[0], tex: match[1].trim() };
    return undefined;
  },
  renderer: (token) => `${placeholder(token.tex, true)}\n`,
};

// `$x$`: no space just inside the dollars and no digit right after the closing one, so
// that prices ("$5 and $6") stay text.
const inlineMath = {
  name: "inlineMath",
  level: "inline",
  start: (src) => src.indexOf("$"),
  tokenizer(src) {
    const match = /^\$(?!\$)(?=\S)((?:\\.|[^\\$\n])+?)(?<=\S)\$(?!\d)/.exec(src);
    if (match) return { type: "inlineMath", raw: match[0], tex: match[1] };
    return undefined;
  },
  renderer: (token) => placeholder(token.tex, false),
};

/** Draws every formula placeholder under `root` with KaTeX (an error shows the source). */
function drawFormulas(root) {
  for (const node of root.querySelectorAll("[data-tex]")) {
    katex.render(node.dataset.tex, node, {
      displayMode: node.classList.contains("math-display"), throwOnError: false, output: "htmlAndMathml",
    });
    node.removeAttribute("data-tex");
  }
}

const marked = new Marked({ gfm: true, breaks: false });
marked.use({ extensions: [blockMath, inlineMath] });

/** Safe HTML nodes for `text`; `images` maps the Markdown's image paths to base64 JPEGs. */
export function renderMarkdown(text, images = {}) {
  const html = DOMPurify.sanitize(marked.parse(text || ""));
  // Parsed in an inert document: no image is fetched before its src is replaced.
  const inert = new DOMParser().parseFromString(`<body>${html}</body>`, "text/html");
  drawFormulas(inert.body);
  for (const img of inert.querySelectorAll("img")) {
    const path = img.getAttribute("src") || "";
    if (Object.hasOwn(images, path)) img.src = `data:image/jpeg;base64,${images[path]}`;
    else if (!path.startsWith("data:")) img.removeAttribute("src");
    img.loading = "lazy";
  }
  const fragment = document.createDocumentFragment();
  fragment.append(...inert.body.childNodes);
  return fragment;
}

/** Draws `text` into `container` (replacing what was there). */
export function showMarkdown(container, text, images) {
  container.replaceChildren(renderMarkdown(text, images));
}

/** Draws one LaTeX formula (a Recognize answer) into `container`. */
export function showFormula(container, tex) {
  const node = Object.assign(document.createElement("div"), { className: "math-display" });
  node.dataset.tex = tex;
  container.replaceChildren(node);
  drawFormulas(container);
}

/** The text of a region's content for a tooltip: an HTML table as rows of cells
 * ("a | b"), anything else as it is. */
export function plainText(content) {
  if (!/<t[dhr][\s>]/i.test(content)) return content;
  const body = new DOMParser().parseFromString(content, "text/html").body;
  const rows = [...body.querySelectorAll("tr")];
  return rows.map((row) => [...row.cells].map((cell) => cell.textContent.trim()).join(" | ")).join("\n");
}
