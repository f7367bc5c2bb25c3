// Events pages, progressive enhancement only (the forms work without it):
// - the participants table's "tick all" box ticks the rows of this page, and the bulk form
//   shows how many are ticked;
// - a form with data-confirm asks before it is sent (the event's "Complete").
(() => {
  const rowBoxes = () => Array.from(document.querySelectorAll("input[data-select]"));

  const showCount = () => {
    const count = rowBoxes().filter((box) => box.checked).length;
    document.querySelectorAll("[data-selected-count]").forEach((node) => {
      node.textContent = String(count);
    });
    const all = document.querySelector("input[data-select-all]");
    if (all) {
      const boxes = rowBoxes();
      all.checked = boxes.length > 0 && count === boxes.length;
      all.indeterminate = count > 0 && count < boxes.length;
    }
  };

  document.addEventListener("change", (event) => {
    const box = event.target;
    if (!(box instanceof HTMLInputElement)) return;
    if (box.hasAttribute("data-select-all")) {
      rowBoxes().forEach((row) => { row.checked = box.checked; });
    }
    if (box.hasAttribute("data-select-all") || box.hasAttribute("data-select")) showCount();
  });

  // Capture phase: runs before app.js's data-once handler disables the buttons.
  document.addEventListener("submit", (event) => {
    const form = event.target;
    if (!(form instanceof HTMLFormElement) || !form.dataset.confirm) return;
    if (!window.confirm(form.dataset.confirm)) {
      event.preventDefault();
      event.stopImmediatePropagation();
    }
  }, true);

  document.addEventListener("DOMContentLoaded", showCount);
})();
