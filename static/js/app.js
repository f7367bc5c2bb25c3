// Progressive enhancement only: the pages work without it. A form marked data-once
// disables its buttons after submitting so a double click sends one request (the server is
// idempotent anyway: punches carry a client id).
document.addEventListener("submit", (event) => {
  const form = event.target;
  if (!(form instanceof HTMLFormElement) || !form.hasAttribute("data-once")) return;
  // Disable after the browser has collected the form data (and the clicked button's value).
  setTimeout(() => form.querySelectorAll("button").forEach((b) => { b.disabled = true; }), 0);
});
