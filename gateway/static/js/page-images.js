// The picture under each page's boxes: an uploaded image is shown as it is; a PDF page is
// drawn in the browser by pdf.js at the size the server rendered it (prunedResult's width
// and height), so boxes in the server's pixels fit it. pdf.js is loaded only for PDFs.

const PDFJS = "/static/vendor/pdfjs-dist";

let pdfjsLoading = null;

function loadPdfjs() {
  pdfjsLoading ??= import(`${PDFJS}/build/pdf.min.mjs`).then((pdfjs) => {
    pdfjs.GlobalWorkerOptions.workerSrc = `${PDFJS}/build/pdf.worker.min.mjs`;
    return pdfjs;
  });
  return pdfjsLoading;
}

/** By its bytes, as the server decides: a PDF's header is within its first 1024 bytes. */
async function isPdf(file) {
  return (await file.slice(0, 1024).text()).includes("%PDF-");
}

/** Draws the pages of one PDF, one at a time (in the order asked), each as a JPEG object
 * URL: a page's canvas is freed as soon as it is drawn. */
class PdfPages {
  constructor(file) {
    this.urls = [];
    this.queue = Promise.resolve();
    this.document = Promise.all([loadPdfjs(), file.arrayBuffer()]).then(([pdfjs, bytes]) =>
      pdfjs.getDocument({
        data: new Uint8Array(bytes),
        cMapUrl: `${PDFJS}/cmaps/`,
        cMapPacked: true,
        standardFontDataUrl: `${PDFJS}/standard_fonts/`,
        wasmUrl: `${PDFJS}/wasm/`,
        iccUrl: `${PDFJS}/iccs/`,
        isEvalSupported: false,
        enableScripting: false,
      }).promise);
    this.document.catch(() => {}); // reported by each page's draw
  }

  /** An object URL of the page with 0-based `pageIndex`, `width` pixels wide. */
  draw(pageIndex, width) {
    const drawn = this.queue.then(() => this.drawNow(pageIndex, width));
    this.queue = drawn.catch(() => {});
    return drawn;
  }

  async drawNow(pageIndex, width) {
    const pdf = await this.document;
    const page = await pdf.getPage(pageIndex + 1);
    const viewport = page.getViewport({ scale: width / page.getViewport({ scale: 1 }).width });
    const canvas = document.createElement("canvas");
    canvas.width = Math.round(viewport.width);
    canvas.height = Math.round(viewport.height);
    await page.render({ canvasContext: canvas.getContext("2d"), viewport }).promise;
    page.cleanup();
    const blob = await new Promise((resolve) => canvas.toBlob(resolve, "image/jpeg", 0.85));
    canvas.width = canvas.height = 0;
    const url = URL.createObjectURL(blob);
    this.urls.push(url);
    return url;
  }

  close() {
    this.document.then((pdf) => pdf.destroy(), () => {});
    this.urls.forEach((url) => URL.revokeObjectURL(url));
  }
}

/** The image file itself for every page (a multi-page TIFF included: the browser shows
 * what it can, see the page's error handler). */
class ImagePages {
  constructor(file) {
    this.url = URL.createObjectURL(file);
  }

  draw() {
    return Promise.resolve(this.url);
  }

  close() {
    URL.revokeObjectURL(this.url);
  }
}

/** The page pictures of `file`: `draw(pageIndex, width)` → Promise of an image URL;
 * `close()` frees them. */
export async function pageImagesFor(file) {
  return (await isPdf(file)) ? new PdfPages(file) : new ImagePages(file);
}
