// The admin centre's own behaviour (templates/admin/base_site.html).
"use strict";

// django-import-export's export page: the "Select all" box (templates/admin/import_export/
// export.html) has no inline onchange handler, which the content security policy would
// refuse; it calls the package's own function from here.
document.addEventListener("DOMContentLoaded", () => {
  for (const toggle of document.querySelectorAll("input.select-toggle[data-select-all]")) {
    toggle.addEventListener("change", (event) => {
      if (typeof window.onSelectToggleChange === "function") {
        window.onSelectToggleChange(event);
      }
    });
  }
});
