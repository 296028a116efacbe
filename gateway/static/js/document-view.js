// The "Pages" view of a result: for each page as it arrives, its picture with the layout
// boxes drawn over it (one focusable button per box, coloured by label, its text shown on
// hover, focus and click) beside the page's Markdown drawn; above them, a legend.

import { plainText, showMarkdown } from "./markdown.js";

// The labels of PP-DocLayout (V2/V3) and of the CPU engine's CDLA model.
const LABEL_COLOURS = {
  doc_title: "#c92a2a", title: "#c92a2a", paragraph_title: "#e8590c",
  text: "#1971c2", abstract: "#3b5bdb", content: "#4263eb", vertical_text: "#1864ab",
  aside_text: "#5c7cfa", algorithm: "#364fc7", reference_content: "#0c8599", reference: "#0c8599",
  table: "#2f9e44", display_formula: "#9c36b5", inline_formula: "#ae3ec9", equation: "#9c36b5",
  formula_number: "#862e9c", image: "#e67700", figure: "#e67700", chart: "#f08c00", seal: "#d9480f",
  figure_title: "#a61e4d", figure_caption: "#a61e4d", table_caption: "#a61e4d", chart_title: "#a61e4d",
  table_title: "#a61e4d", vision_footnote: "#5f3dc4", footnote: "#5f3dc4",
  header: "#868e96", footer: "#868e96", number: "#495057", header_image: "#adb5bd", footer_image: "#adb5bd",
};

/** A label's colour; labels not in the table get a stable hue of their own. */
export function labelColour(label) {
  if (LABEL_COLOURS[label]) return LABEL_COLOURS[label];
  let hash = 0;
  for (const char of label) hash = (hash * 31 + char.codePointAt(0)) % 360;
  return `hsl(${hash} 70% 38%)`;
}

function overlap(a, b) {
  const w = Math.min(a[2], b[2]) - Math.max(a[0], b[0]);
  const h = Math.min(a[3], b[3]) - Math.max(a[1], b[1]);
  if (w <= 0 || h <= 0) return 0;
  const area = (r) => (r[2] - r[0]) * (r[3] - r[1]);
  return (w * h) / (area(a) + area(b) - w * h);
}

/** For each layout box, the parsing block it became (the block over the same region:
 * most overlap, at least half), or null: boxes carry no text, blocks do. */
function blocksOfBoxes(boxes, blocks) {
  const free = new Set(blocks);
  return boxes.map((box) => {
    let best = null;
    let bestOverlap = 0.5;
    for (const block of free) {
      const score = overlap(box.coordinate, block.block_bbox);
      if (score >= bestOverlap) [best, bestOverlap] = [block, score];
    }
    free.delete(best);
    return best;
  });
}

function element(tag, attributes = {}, ...children) {
  const node = document.createElement(tag);
  for (const [name, value] of Object.entries(attributes)) {
    if (name === "className") node.className = value;
    else node.setAttribute(name, value);
  }
  node.append(...children);
  return node;
}

function regionText(block) {
  if (!block) return "";
  return plainText(block.block_content || "").trim();
}

/** One page: picture, boxes, tooltip, Markdown. */
class PageView {
  constructor(result, pageImages) {
    const page = result.prunedResult;
    this.page = page;
    this.number = page.page_index + 1;
    const boxes = page.layout_det_res?.boxes || [];
    const blocks = blocksOfBoxes(boxes, page.parsing_res_list || []);
    const id = `page-${this.number}`;
    this.tip = element("div", { className: "box-tip", role: "tooltip", id: `${id}-tip`, hidden: "" });
    this.image = element("img", { className: "page-image", alt: `Page ${this.number} as drawn` });
    this.boxes = element("div", { className: "boxes", role: "group", "aria-label": `Regions of page ${this.number}` },
      ...boxes.map((box, i) => this.boxButton(box, blocks[i], i, boxes.length)));
    this.canvas = element("div", { className: "page-canvas drawing", style: `aspect-ratio: ${page.width} / ${page.height}` },
      this.image, this.boxes, this.tip);
    this.markdown = element("div", { className: "markdown-body page-markdown", "aria-label": `Page ${this.number} as Markdown` });
    showMarkdown(this.markdown, result.markdown?.text || "", result.markdown?.images || {});
    const title = element("h2", { className: "page-title", id: `${id}-title` },
      `Page ${this.number}`, element("span", { className: "hint" }, ` · ${boxes.length} regions`));
    this.root = element("article", { className: "page", id, "aria-labelledby": title.id },
      title, element("div", { className: "page-body" }, this.canvas, this.markdown));
    this.pinned = null;
    this.listen();
    this.draw(pageImages);
  }

  boxButton(box, block, index, count) {
    const [x1, y1, x2, y2] = box.coordinate;
    const { width, height } = this.page;
    const text = regionText(block);
    const button = element("button", {
      type: "button",
      className: "box",
      style: `left: ${(100 * x1) / width}%; top: ${(100 * y1) / height}%; ` +
        `width: ${(100 * (x2 - x1)) / width}%; height: ${(100 * (y2 - y1)) / height}%; ` +
        `--c: ${labelColour(box.label)}`,
      "data-label": box.label,
      "aria-label": `${box.label}, region ${index + 1} of ${count}`,
      "aria-describedby": this.tip.id,
      "aria-pressed": "false",
    });
    button.region = { label: box.label, score: box.score, text, box: [x1, y1, x2, y2] };
    return button;
  }

  listen() {
    const boxOf = (event) => event.target.closest?.(".box");
    this.boxes.addEventListener("mouseover", (event) => boxOf(event) && this.show(boxOf(event)));
    this.boxes.addEventListener("focusin", (event) => boxOf(event) && this.show(boxOf(event)));
    this.boxes.addEventListener("mouseleave", () => this.show(this.pinned));
    this.boxes.addEventListener("focusout", (event) => {
      if (!this.boxes.contains(event.relatedTarget)) this.show(this.pinned);
    });
    this.boxes.addEventListener("click", (event) => boxOf(event) && this.pin(boxOf(event)));
    this.boxes.addEventListener("keydown", (event) => {
      if (event.key === "Escape") this.pin(null);
    });
  }

  /** A click pins a box's text (a second click, or Escape, lets it go). */
  pin(button) {
    if (this.pinned) this.pinned.setAttribute("aria-pressed", "false");
    this.pinned = button === this.pinned ? null : button;
    if (this.pinned) this.pinned.setAttribute("aria-pressed", "true");
    this.show(this.pinned || button);
  }

  /** The tooltip for `button` (or none), placed under the box, or above it near the
   * page's bottom, and kept inside the page. */
  show(button) {
    for (const box of this.boxes.querySelectorAll(".box.active")) box.classList.remove("active");
    if (!button) {
      this.tip.hidden = true;
      return;
    }
    button.classList.add("active");
    const { label, score, text, box } = button.region;
    const [x1, y1, x2, y2] = box.map((v, i) => (100 * v) / (i % 2 ? this.page.height : this.page.width));
    this.tip.replaceChildren(
      element("span", { className: "tip-label", style: `--c: ${labelColour(label)}` },
        label, typeof score === "number" ? ` · ${score.toFixed(2)}` : ""),
      element("span", { className: text ? "tip-text" : "tip-text empty" }, text || "No text: regions with this label are not read"),
    );
    const below = y2 < 70;
    Object.assign(this.tip.style, {
      top: below ? `${y2}%` : "", bottom: below ? "" : `${100 - y1}%`,
      left: x1 < 50 ? `${x1}%` : "", right: x1 < 50 ? "" : `${100 - x2}%`,
    });
    this.tip.hidden = false;
  }

  async draw(pageImages) {
    try {
      this.image.src = await pageImages.draw(this.page.page_index, this.page.width);
      await this.image.decode();
      this.canvas.classList.remove("drawing");
    } catch {
      this.canvas.classList.replace("drawing", "undrawable");
      this.image.removeAttribute("src");
      this.image.alt = "";
      this.canvas.dataset.note = "This browser cannot draw this page; the boxes are shown on a blank page.";
    }
  }
}

/** The Pages panel: `reset(pageImages)` for a new document, `addPage(result)` per page. */
export class DocumentView {
  constructor({ pages, legend }) {
    this.pagesElement = pages;
    this.legendElement = legend;
    this.reset(null);
  }

  reset(pageImages) {
    this.pageImages = pageImages;
    this.counts = new Map();
    this.pagesElement.replaceChildren();
    this.legendElement.replaceChildren();
  }

  addPage(result) {
    this.pagesElement.append(new PageView(result, this.pageImages).root);
    for (const box of result.prunedResult.layout_det_res?.boxes || []) {
      this.counts.set(box.label, (this.counts.get(box.label) || 0) + 1);
    }
    this.drawLegend();
  }

  drawLegend() {
    const labels = [...this.counts.keys()].sort();
    this.legendElement.replaceChildren(...labels.map((label) =>
      element("li", { style: `--c: ${labelColour(label)}` },
        element("span", { className: "swatch", "aria-hidden": "true" }),
        element("span", {}, `${label} `, element("span", { className: "count" }, `(${this.counts.get(label)})`)))));
  }
}
