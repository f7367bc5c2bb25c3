// The import wizard (/imports/): upload → format & mapping → preview → commit, against the
// JSON API with the session cookie and the CSRF header. Also asks before a form marked
// data-confirm is sent (the batch report's "Roll back").
(() => {
  "use strict";

  // Strings come from Django's JavaScript catalogue (/jsi18n/, loaded first by base.html);
  // without it the page still works, in English.
  const gettext = window.gettext || ((text) => text);
  const ngettext = window.ngettext || ((one, many, count) => (count === 1 ? one : many));
  const f = (text, values) => text.replace(/%\((\w+)\)s/g, (_, key) => String(values[key]));
  const JOB_LABELS = {
    queued: gettext("Queued"),
    running: gettext("Running"),
    succeeded: gettext("Done"),
    failed: gettext("Failed"),
    cancelled: gettext("Cancelled"),
  };

  // --- forms that ask first ---------------------------------------------------------------
  // Capture phase: runs before app.js's data-once handler, which must not disable the
  // buttons of a form whose submission was cancelled here.
  document.addEventListener(
    "submit",
    (event) => {
      const form = event.target;
      if (!(form instanceof HTMLFormElement) || !form.dataset.confirm) return;
      if (!window.confirm(form.dataset.confirm)) {
        event.preventDefault();
        event.stopPropagation();
      }
    },
    true,
  );

  // --- the batch report: a rollback running as a job ----------------------------------------
  const rollbackJob = document.getElementById("rollback-job");
  if (rollbackJob) {
    const show = (job) => {
      const percent = Math.max(0, Math.min(100, job.progressPercent || 0));
      document.getElementById("rollback-progress").value = percent;
      document.getElementById("rollback-percent").textContent = `${percent}%`;
      const label = JOB_LABELS[job.status] || job.status;
      const error = job.error && job.error.message ? `: ${job.error.message}` : "";
      document.getElementById("rollback-job-text").textContent = `${label}${error}`;
      rollbackJob.dataset.status = job.status;
    };
    const follow = async () => {
      try {
        const response = await fetch(rollbackJob.dataset.jobUrl, { headers: { Accept: "application/json" }, credentials: "same-origin" });
        const body = await response.json();
        if (body.ok) {
          show(body.data.job);
          if (body.data.job.status === "succeeded") {
            window.location.reload();
            return;
          }
          if (body.data.job.status === "failed" || body.data.job.status === "cancelled") return;
        }
      } catch (error) {
        /* the next poll tries again */
      }
      setTimeout(follow, 1000);
    };
    setTimeout(follow, 500);
  }

  const root = document.getElementById("import-wizard");
  if (!root) return;

  // --- small helpers ----------------------------------------------------------------------
  const $ = (id) => document.getElementById(id);
  const urls = {
    formats: root.dataset.formatsUrl,
    upload: root.dataset.uploadUrl,
    preview: root.dataset.previewUrl,
    errors: root.dataset.errorsUrl,
    prepare: root.dataset.prepareUrl,
    commit: root.dataset.commitUrl,
    jobs: root.dataset.jobsUrl,
    batches: root.dataset.batchesUrl,
  };
  const MAX_BYTES = Number(root.dataset.maxBytes || 0);
  const POLL_MS = 500;
  const PREVIEW_LIMIT = 50;
  const STAT_KEYS = ["insert", "update", "unchanged", "skip", "invalid", "duplicate"];
  // Labels of the codes the API speaks in, in the page's language (imports/labels.py).
  const LABELS = JSON.parse(document.getElementById("import-labels").textContent);
  const codeLabel = (code) => LABELS.codes[code] || code;
  const actionLabel = (action) => LABELS.actions[action] || action;
  const statLabel = (key) => LABELS.stats[key] || key;
  const numberFormat = new Intl.NumberFormat(document.documentElement.lang || "en");
  const number = (value) => numberFormat.format(value || 0);

  class ApiError extends Error {
    constructor(code, message, details, status) {
      super(message);
      this.code = code;
      this.details = details || {};
      this.status = status;
    }
  }

  function csrfToken() {
    const match = document.cookie.match(/(?:^|;\s*)csrftoken=([^;]+)/);
    return match ? decodeURIComponent(match[1]) : "";
  }

  function newKey() {
    if (window.crypto && typeof window.crypto.randomUUID === "function") {
      return window.crypto.randomUUID();
    }
    // Outside a secure context randomUUID is missing; build a v4 UUID by hand.
    const bytes = window.crypto.getRandomValues(new Uint8Array(16));
    bytes[6] = (bytes[6] & 0x0f) | 0x40;
    bytes[8] = (bytes[8] & 0x3f) | 0x80;
    const hex = Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");
    return `${hex.slice(0, 8)}-${hex.slice(8, 12)}-${hex.slice(12, 16)}-${hex.slice(16, 20)}-${hex.slice(20)}`;
  }

  async function errorFrom(response) {
    let body = null;
    try {
      body = await response.json();
    } catch (_) {
      /* not JSON: a proxy's error page, say */
    }
    if (body && body.ok === false && body.error) {
      return new ApiError(body.error.code, body.error.message, body.error.details, response.status);
    }
    return new ApiError(`HTTP_${response.status}`, response.statusText || gettext("The server did not answer as expected."), {}, response.status);
  }

  // fetch() with the session cookie and CSRF header; resolves to the envelope's data.
  async function api(url, { method = "GET", json, body, contentType } = {}) {
    const headers = { Accept: "application/json" };
    if (method !== "GET") headers["X-CSRFToken"] = csrfToken();
    if (json !== undefined) {
      headers["Content-Type"] = "application/json";
      body = JSON.stringify(json);
    } else if (contentType) {
      headers["Content-Type"] = contentType;
    }
    let response;
    try {
      response = await fetch(url, { method, headers, body, credentials: "same-origin" });
    } catch (_) {
      throw new ApiError("NETWORK_ERROR", gettext("The server could not be reached. Check your connection and try again."));
    }
    if (!response.ok) throw await errorFrom(response);
    const envelope = await response.json();
    if (!envelope.ok) throw new ApiError(envelope.error.code, envelope.error.message, envelope.error.details, response.status);
    return envelope.data;
  }

  function formatBytes(bytes) {
    if (bytes < 1024) return `${bytes} B`;
    const units = ["KB", "MB", "GB"];
    let value = bytes / 1024;
    let unit = 0;
    while (value >= 1024 && unit < units.length - 1) {
      value /= 1024;
      unit += 1;
    }
    return `${value.toFixed(value < 10 ? 1 : 0)} ${units[unit]}`;
  }

  // An ISO instant → "YYYY-MM-DD HH:MM <zone>" in the organisation's time zone (as every
  // other time of the pages), never the browser's locale and zone.
  function formatDateTime(iso) {
    if (!iso) return "—";
    const date = new Date(iso);
    const formatter = zoneFormatter(root.dataset.timeZone);
    if (Number.isNaN(date.getTime()) || !formatter) return iso;
    const parts = Object.fromEntries(formatter.formatToParts(date).map((part) => [part.type, part.value]));
    return `${parts.year}-${parts.month}-${parts.day} ${parts.hour}:${parts.minute} (${formatter.resolvedOptions().timeZone})`;
  }

  // A formatter for one time zone (null when the browser does not know the zone).
  function zoneFormatter(timeZone) {
    try {
      return new Intl.DateTimeFormat("en-CA", {
        timeZone,
        year: "numeric",
        month: "2-digit",
        day: "2-digit",
        hour: "2-digit",
        minute: "2-digit",
        hourCycle: "h23",
      });
    } catch (_) {
      return null;
    }
  }

  // An ISO instant → "HH:MM" in the formatter's zone, "+1" when it falls after the work date.
  function clock(iso, workDate, formatter) {
    if (!iso) return "—";
    const instant = new Date(iso);
    if (!formatter || Number.isNaN(instant.getTime())) return iso.slice(11, 16);
    const parts = Object.fromEntries(formatter.formatToParts(instant).map((part) => [part.type, part.value]));
    const text = `${parts.hour}:${parts.minute}`;
    const day = `${parts.year}-${parts.month}-${parts.day}`;
    if (!workDate || day === workDate) return text;
    const days = Math.round((Date.parse(day) - Date.parse(workDate)) / 86_400_000);
    return days ? `${text} ${days > 0 ? "+" : ""}${days}` : text;
  }

  function el(tag, attrs = {}, ...children) {
    const node = document.createElement(tag);
    for (const [key, value] of Object.entries(attrs)) {
      if (value === undefined || value === null || value === false) continue;
      if (key === "className") node.className = value;
      else if (key === "dataset") Object.assign(node.dataset, value);
      else node.setAttribute(key, value === true ? "" : value);
    }
    for (const child of children) {
      if (child === null || child === undefined) continue;
      node.append(child instanceof Node ? child : document.createTextNode(String(child)));
    }
    return node;
  }

  // --- status, alerts and steps -----------------------------------------------------------
  const statusText = $("wizard-status");
  const alertBox = $("wizard-alert");

  function say(text) {
    statusText.textContent = text;
  }

  function showError(error, context) {
    const code = error.code || "ERROR";
    alertBox.replaceChildren(
      el("strong", { className: "alert-title" }, context ? f(gettext("%(step)s failed"), { step: context }) : gettext("Something went wrong")),
      el("div", {}, el("code", { className: "error-code", dataset: { code } }, code), " ", error.message || ""),
    );
    const fields = error.details && error.details.fields;
    if (fields && typeof fields === "object") {
      const list = el("ul", { className: "field-errors" });
      for (const [field, messages] of Object.entries(fields)) {
        list.append(el("li", {}, `${field}: ${[].concat(messages).join(" ")}`));
      }
      alertBox.append(list);
    }
    alertBox.hidden = false;
    say(f(gettext("%(step)s failed: %(code)s."), { step: context || gettext("Request"), code }));
  }

  function clearError() {
    alertBox.hidden = true;
    alertBox.replaceChildren();
  }

  const STEPS = ["upload", "options", "preview", "commit"];
  function setStep(name) {
    const current = STEPS.indexOf(name);
    root.querySelectorAll(".steps li").forEach((item) => {
      const index = STEPS.indexOf(item.dataset.step);
      item.classList.toggle("is-done", index < current);
      if (index === current) item.setAttribute("aria-current", "step");
      else item.removeAttribute("aria-current");
    });
  }

  // --- state -----------------------------------------------------------------------------
  const state = {
    formats: null, // [{name, label, columns: [...]}, ...]
    upload: null, // the upload's answer
    idempotencyKey: null, // one per wizard run (per uploaded file)
    previewBody: null, // the options of the last preview: what a commit sends
    stale: false,
    committing: false,
  };

  let formatsRequest = null;
  function loadFormats() {
    if (!formatsRequest) {
      formatsRequest = api(urls.formats).then(
        (formats) => {
          state.formats = formats;
          return formats;
        },
        (error) => {
          formatsRequest = null; // the next upload asks again
          throw error;
        },
      );
    }
    return formatsRequest;
  }

  // --- step 1: upload -----------------------------------------------------------------------
  const fileInput = $("import-file");
  const dropzone = $("dropzone");

  async function upload(file) {
    clearError();
    if (!file) return;
    if (MAX_BYTES && file.size > MAX_BYTES) {
      showError(
        new ApiError(
          "UPLOAD_TOO_LARGE",
          f(gettext("%(file)s is %(size)s; the limit is %(limit)s."), { file: file.name, size: formatBytes(file.size), limit: formatBytes(MAX_BYTES) }),
        ),
        gettext("Upload"),
      );
      return;
    }
    resetAfterUpload();
    fileInput.disabled = true;
    dropzone.classList.add("is-busy");
    say(f(gettext("Uploading %(file)s (%(size)s)…"), { file: file.name, size: formatBytes(file.size) }));
    try {
      const [data] = await Promise.all([
        api(`${urls.upload}?filename=${encodeURIComponent(file.name)}`, {
          method: "POST",
          body: file,
          contentType: "application/octet-stream",
        }),
        loadFormats(),
      ]);
      state.upload = data;
      state.idempotencyKey = newKey();
      showUpload(data);
      showOptions(data);
      say(f(gettext("Uploaded %(file)s: %(rows)s rows, format %(format)s."), { file: data.filename, rows: number(data.rowCount), format: data.format || gettext("not detected") }));
    } catch (error) {
      showError(error, gettext("Upload"));
      fileInput.value = "";
    } finally {
      fileInput.disabled = false;
      dropzone.classList.remove("is-busy");
    }
  }

  function showUpload(data) {
    $("upload-filename").textContent = data.filename;
    $("upload-filename").title = `SHA-256 ${data.sha256}`;
    $("upload-size").textContent = formatBytes(data.bytes);
    $("upload-format").textContent = data.format || gettext("not detected");
    $("upload-format").dataset.format = data.format || "";
    $("upload-encoding").textContent = data.encoding || (data.container === "xlsx" ? "XLSX" : "—");
    $("upload-rows").textContent = data.format ? String(data.rowCount) : gettext("— (counted once the format is known)");
    $("upload-expires").textContent = formatDateTime(data.expiresAt);
    $("upload-result").hidden = false;
    dropzone.hidden = true;
  }

  function resetAfterUpload() {
    state.upload = null;
    state.previewBody = null;
    state.idempotencyKey = null;
    $("upload-result").hidden = true;
    dropzone.hidden = false;
    for (const id of ["step-options", "step-preview", "step-commit"]) $(id).hidden = true;
    setStep("upload");
  }

  fileInput.addEventListener("change", () => upload(fileInput.files[0]));
  $("upload-again").addEventListener("click", () => {
    clearError();
    resetAfterUpload();
    fileInput.value = "";
    fileInput.focus();
    say(gettext("Choose another file."));
  });

  ["dragenter", "dragover"].forEach((type) =>
    dropzone.addEventListener(type, (event) => {
      event.preventDefault();
      dropzone.classList.add("is-over");
    }),
  );
  ["dragleave", "dragend"].forEach((type) =>
    dropzone.addEventListener(type, () => dropzone.classList.remove("is-over")),
  );
  dropzone.addEventListener("drop", (event) => {
    event.preventDefault();
    dropzone.classList.remove("is-over");
    const files = event.dataTransfer && event.dataTransfer.files;
    if (files && files.length) upload(files[0]);
  });
  // A file dropped beside the zone must not make the browser leave the page to open it.
  ["dragover", "drop"].forEach((type) =>
    window.addEventListener(type, (event) => {
      if (!dropzone.contains(event.target)) event.preventDefault();
    }),
  );

  // --- step 2: format & mapping -------------------------------------------------------------
  const formatSelect = $("import-format");
  const optionsForm = $("options-form");
  const mappingRows = $("mapping-rows");
  let mappingCount = 0;

  function showOptions(data) {
    formatSelect.replaceChildren(
      el("option", { value: "" }, data.format ? gettext("Detect automatically") : gettext("Choose a format…")),
      ...state.formats.map((fmt) => el("option", { value: fmt.name }, `${fmt.label} (${fmt.name})`)),
    );
    formatSelect.value = data.format || "";
    showColumns();
    $("step-options").hidden = false;
    setStep("options");
  }

  function currentFormat() {
    const name = formatSelect.value || (state.upload && state.upload.format);
    return (state.formats || []).find((fmt) => fmt.name === name) || null;
  }

  function showColumns() {
    const fmt = currentFormat();
    const body = $("format-columns");
    const expected = $("expected-headers");
    body.replaceChildren();
    expected.replaceChildren();
    $("format-help").textContent = fmt
      ? `${fmt.label} · ${fmt.kind} · ${fmt.containers.join(", ")}`
      : gettext("The format was not detected: choose it, and map your headers if they differ.");
    if (!fmt) return;
    for (const column of fmt.columns) {
      body.append(
        el(
          "tr",
          {},
          el("td", {}, el("code", {}, column.header)),
          el("td", {}, column.required ? gettext("yes") : gettext("no")),
          el("td", { className: "small" }, column.description || ""),
        ),
      );
      expected.append(el("option", { value: column.header }));
    }
  }

  function addMappingRow(source = "", target = "") {
    mappingCount += 1;
    const n = mappingCount;
    const row = el("div", { className: "mapping-row", dataset: { mapping: String(n) } });
    const sourceId = `mapping-source-${n}`;
    const targetId = `mapping-target-${n}`;
    row.append(
      el("div", { className: "field" }, el("label", { for: sourceId }, gettext("Header in my file")), el("input", { type: "text", id: sourceId, value: source, className: "mapping-source", autocomplete: "off" })),
      el("span", { className: "mapping-arrow", "aria-hidden": "true" }, "→"),
      el("div", { className: "field" }, el("label", { for: targetId }, gettext("Expected header")), el("input", { type: "text", id: targetId, value: target, className: "mapping-target", list: "expected-headers", autocomplete: "off" })),
      el("button", { type: "button", className: "btn btn-sm btn-danger-ghost mapping-remove", "aria-label": f(gettext("Remove mapping %(n)s"), { n }) }, gettext("Remove")),
    );
    mappingRows.append(row);
    row.querySelector("input").focus();
  }

  function mapping() {
    const result = {};
    mappingRows.querySelectorAll(".mapping-row").forEach((row) => {
      const source = row.querySelector(".mapping-source").value.trim();
      const target = row.querySelector(".mapping-target").value.trim();
      if (source && target) result[source] = target;
    });
    return result;
  }

  $("mapping-add").addEventListener("click", () => addMappingRow());
  mappingRows.addEventListener("click", (event) => {
    const button = event.target.closest(".mapping-remove");
    if (!button) return;
    button.closest(".mapping-row").remove();
    markStale();
    $("mapping-add").focus();
  });
  formatSelect.addEventListener("change", showColumns);

  function options() {
    const mode = optionsForm.querySelector('input[name="mode"]:checked');
    return {
      fileId: state.upload.fileId,
      format: formatSelect.value || undefined,
      mapping: mapping(),
      timezone: $("import-timezone").value.trim() || undefined,
      mode: mode ? mode.value : "override",
      createMissingEmployees: $("import-create-missing").checked,
    };
  }

  function markStale() {
    if (!state.previewBody || state.committing) return;
    state.stale = true;
    $("preview-stale").hidden = false;
    $("commit-button").disabled = true;
  }
  optionsForm.addEventListener("input", markStale);
  optionsForm.addEventListener("change", markStale);

  // --- step 3: preview ----------------------------------------------------------------------
  optionsForm.addEventListener("submit", async (event) => {
    event.preventDefault();
    if (!state.upload || state.committing) return;
    clearError();
    const body = options();
    const button = $("preview-button");
    button.disabled = true;
    say(gettext("Previewing…"));
    try {
      const data = await api(urls.preview, { method: "POST", json: { ...body, previewLimit: PREVIEW_LIMIT } });
      state.previewBody = body;
      state.stale = false;
      showPreview(data);
      say(f(gettext("Preview: %(counts)s."), { counts: STAT_KEYS.map((key) => `${number(data.stats[key])} ${statLabel(key)}`).join(", ") }));
    } catch (error) {
      showError(error, gettext("Preview"));
    } finally {
      button.disabled = false;
    }
  });

  function showPreview(data) {
    for (const key of STAT_KEYS) {
      const card = $("preview-stats").querySelector(`[data-stat="${key}"]`);
      card.querySelector(".stat-value").textContent = number(data.stats[key] ?? 0);
      card.classList.toggle("is-zero", !data.stats[key]);
    }
    $("preview-format").textContent = `· ${data.format}`;
    const shown = data.items.length;
    const toCreate = data.employeesToCreate;
    $("preview-summary").replaceChildren(
      f(gettext("%(rows)s rows in the file, %(days)s employee-days."), { rows: number(data.rowCount), days: number(data.dayCount) }),
      " ",
      el(
        "span",
        { id: "employees-to-create", dataset: { count: String(toCreate) } },
        f(ngettext("%(count)s employee to create.", "%(count)s employees to create.", toCreate), { count: number(toCreate) }),
      ),
      shown ? ` ${f(gettext("Showing the first %(shown)s of %(rows)s rows."), { shown: number(shown), rows: number(data.rowCount) })}` : "",
    );

    const timeZone = (state.previewBody && state.previewBody.timezone) || root.dataset.timeZone;
    const formatter = zoneFormatter(timeZone) || zoneFormatter(root.dataset.timeZone);
    $("preview-tz").textContent = `· ${f(gettext("times in %(zone)s"), { zone: formatter ? formatter.resolvedOptions().timeZone : "UTC" })}`;
    const items = $("preview-items").tBodies[0];
    items.replaceChildren(
      ...data.items.map((item) =>
        el(
          "tr",
          { dataset: { row: String(item.row), action: item.action } },
          el("td", { className: "num" }, item.row),
          el("td", {}, item.employeeNo || "—"),
          el("td", {}, item.name || ""),
          el("td", { className: "date" }, item.workDate || "—"),
          el("td", { className: "time", title: item.firstIn || "" }, clock(item.firstIn, item.workDate, formatter)),
          el("td", { className: "time", title: item.lastOut || "" }, clock(item.lastOut, item.workDate, formatter)),
          el("td", {}, item.status ? el("span", { className: `badge st-${item.status}`, dataset: { status: item.status } }, LABELS.statuses[item.status] || item.status) : "—"),
          el("td", {}, el("span", { className: `badge ia-${item.action}`, dataset: { action: item.action } }, actionLabel(item.action))),
        ),
      ),
    );
    if (!data.items.length) items.append(el("tr", {}, el("td", { colspan: "8", className: "muted" }, gettext("No rows to show."))));

    showProblems(data);

    // A batch that would change nothing is not worth a commit (nor a batch to roll back).
    const changes = (data.stats.insert || 0) + (data.stats.update || 0);
    state.nothingToCommit = changes === 0;
    $("commit-reason").hidden = changes !== 0;
    $("preview-stale").hidden = true;
    $("commit-button").disabled = state.nothingToCommit;
    $("step-preview").hidden = false;
    $("step-commit").hidden = true;
    setStep("preview");
  }

  // --- problems: counted by kind (over the whole file), listed 50 a page ---------------------
  const ERRORS_PAGE = 50;
  const problems = { rows: [], total: 0, code: "", page: 0 };

  function showProblems(data) {
    const total = data.errorsTotal ?? data.errors.length;
    const groups = data.errorsByCode || [];
    $("preview-errors-total").textContent = `· ${number(total)}`;
    $("preview-errors-box").hidden = total === 0;

    const unknown = groups.find((group) => group.code === "UNKNOWN_EMPLOYEE");
    const creating = state.previewBody && state.previewBody.createMissingEmployees;
    $("create-missing-hint").hidden = !unknown || Boolean(creating);
    $("unknown-employee-count").textContent = unknown ? number(unknown.count) : "0";

    $("preview-error-groups").tBodies[0].replaceChildren(
      ...groups.map((group) =>
        el(
          "tr",
          { dataset: { code: group.code } },
          el("td", {}, codeLabel(group.code)),
          el("td", {}, el("code", {}, group.code)),
          el("td", { className: "num" }, number(group.count)),
          el(
            "td",
            {},
            el("button", { type: "button", className: "btn btn-sm btn-ghost", dataset: { showCode: group.code } }, gettext("Show")),
          ),
        ),
      ),
    );
    problems.rows = data.errors;
    problems.total = total;
    problems.code = "";
    problems.page = 0;
    showProblemPage();
  }

  function showProblemPage() {
    const rows = problems.code ? problems.rows.filter((row) => row.code === problems.code) : problems.rows;
    const pages = Math.max(1, Math.ceil(rows.length / ERRORS_PAGE));
    problems.page = Math.min(problems.page, pages - 1);
    const first = problems.page * ERRORS_PAGE;
    $("preview-errors").tBodies[0].replaceChildren(
      ...rows.slice(first, first + ERRORS_PAGE).map((error) =>
        el(
          "tr",
          { dataset: { code: error.code } },
          el("td", { className: "num" }, error.row),
          el("td", {}, error.column || "—"),
          el("td", {}, codeLabel(error.code), " ", el("code", {}, error.code)),
          el("td", {}, error.message),
        ),
      ),
    );
    $("preview-errors-filter").replaceChildren(
      problems.code ? `· ${codeLabel(problems.code)} ` : "",
      problems.code ? el("button", { type: "button", className: "btn btn-sm btn-ghost", id: "errors-show-all" }, gettext("Show all")) : "",
    );
    $("errors-page").textContent = rows.length
      ? f(gettext("%(first)s–%(last)s of %(count)s"), { first: number(first + 1), last: number(Math.min(first + ERRORS_PAGE, rows.length)), count: number(rows.length) })
      : "";
    $("errors-prev").disabled = problems.page === 0;
    $("errors-next").disabled = problems.page >= pages - 1;
    $("errors-pager").hidden = rows.length <= ERRORS_PAGE;
    const listedAll = problems.total <= problems.rows.length;
    $("errors-more").hidden = listedAll;
    $("errors-more").textContent = listedAll
      ? ""
      : f(gettext("The first %(shown)s problems are listed here; the CSV holds all %(count)s."), { shown: number(problems.rows.length), count: number(problems.total) });
  }

  $("errors-prev").addEventListener("click", () => {
    problems.page -= 1;
    showProblemPage();
  });
  $("errors-next").addEventListener("click", () => {
    problems.page += 1;
    showProblemPage();
  });
  $("preview-errors-box").addEventListener("click", (event) => {
    const show = event.target.closest("[data-show-code]");
    if (show) {
      problems.code = show.dataset.showCode;
      problems.page = 0;
      showProblemPage();
      $("preview-errors-title").scrollIntoView({ block: "nearest" });
    } else if (event.target.closest("#errors-show-all")) {
      problems.code = "";
      problems.page = 0;
      showProblemPage();
    }
  });
  $("create-missing-hint").addEventListener("click", (event) => {
    if (!event.target.closest('a[href="#import-create-missing"]')) return;
    event.preventDefault();
    const box = $("import-create-missing");
    box.scrollIntoView({ block: "center" });
    box.focus();
  });

  $("errors-download").addEventListener("click", async () => {
    if (!state.previewBody) return;
    clearError();
    const button = $("errors-download");
    button.disabled = true;
    say(gettext("Preparing the errors CSV…"));
    try {
      const response = await fetch(urls.errors, {
        method: "POST",
        credentials: "same-origin",
        headers: { "Content-Type": "application/json", "X-CSRFToken": csrfToken(), Accept: "text/csv" },
        body: JSON.stringify(state.previewBody),
      });
      if (!response.ok) throw await errorFrom(response);
      const blob = await response.blob();
      const link = el("a", { href: URL.createObjectURL(blob), download: "import-errors.csv" });
      document.body.append(link);
      link.click();
      link.remove();
      setTimeout(() => URL.revokeObjectURL(link.href), 10_000);
      say(gettext("Errors CSV downloaded."));
    } catch (error) {
      showError(error instanceof ApiError ? error : new ApiError("NETWORK_ERROR", String(error)), gettext("Errors download"));
    } finally {
      button.disabled = false;
    }
  });

  // --- step 4: commit -----------------------------------------------------------------------
  const commitButton = $("commit-button");

  commitButton.addEventListener("click", async () => {
    if (!state.previewBody || state.stale || state.committing || state.nothingToCommit) return;
    state.committing = true;
    commitButton.disabled = true;
    $("preview-button").disabled = true;
    clearError();
    say(gettext("Committing…"));
    try {
      const { commitToken } = await api(urls.prepare, { method: "POST" });
      const data = await api(urls.commit, {
        method: "POST",
        json: { ...state.previewBody, commitToken, idempotencyKey: state.idempotencyKey },
      });
      startProgress(data.job);
    } catch (error) {
      state.committing = false;
      commitButton.disabled = false;
      $("preview-button").disabled = false;
      showError(error, gettext("Commit"));
    }
  });

  function showJob(job) {
    const percent = Math.max(0, Math.min(100, job.progressPercent || 0));
    const bar = $("commit-progress");
    bar.value = percent;
    bar.textContent = `${percent}%`;
    bar.dataset.status = job.status;
    $("progress-percent").textContent = `${percent}%`;
    // A job's total counts each row of the file twice (read, then written): the page speaks
    // in rows of the file, with the phase.
    const rows = Math.round((job.total || 0) / 2);
    const processed = job.processed || 0;
    let counts = "";
    if (rows && job.status === "running") {
      counts =
        processed <= rows
          ? ` · ${f(gettext("reading %(done)s / %(rows)s rows"), { done: processed, rows })}`
          : ` · ${f(gettext("writing %(done)s / %(rows)s rows"), { done: processed - rows, rows })}`;
    } else if (rows) {
      counts = ` · ${Math.max(0, processed - rows)} / ${rows}`;
    }
    const label = JOB_LABELS[job.status] || job.status;
    $("progress-text").textContent = `${label}${counts}`;
    $("progress-text").dataset.status = job.status;
  }

  function startProgress(job) {
    $("step-commit").hidden = false;
    setStep("commit");
    $("step-commit-title").scrollIntoView({ block: "nearest" });
    showJob(job);
    let failures = 0;

    const poll = async () => {
      let current;
      try {
        current = (await api(`${urls.jobs}${job.id}`)).job;
        failures = 0;
      } catch (error) {
        failures += 1;
        if (failures >= 20) {
          showError(error, gettext("Following the job"));
          $("commit-restart").hidden = false;
          return;
        }
        say(f(gettext("Lost contact with the server (%(code)s); retrying…"), { code: error.code }));
        setTimeout(poll, POLL_MS * 2);
        return;
      }
      showJob(current);
      if (current.status === "succeeded") {
        const stats = (current.result && current.result.stats) || {};
        const url = `${urls.batches}${current.batchId}/`;
        $("batch-link").href = url;
        $("commit-done").hidden = false;
        say(f(gettext("Done: batch %(batch)s committed (%(inserted)s inserted, %(updated)s updated). Opening its report…"), { batch: current.batchId, inserted: stats.insert ?? 0, updated: stats.update ?? 0 }));
        setTimeout(() => window.location.assign(url), 800);
      } else if (current.status === "failed" || current.status === "cancelled") {
        const error = current.error || {};
        showError(new ApiError(error.code || current.status.toUpperCase(), error.message || f(gettext("The job ended: %(status)s."), { status: JOB_LABELS[current.status] || current.status }), error.details), gettext("Import"));
        $("commit-restart").hidden = false;
      } else {
        say(f(gettext("Importing… %(percent)s"), { percent: `${current.progressPercent}%` }));
        setTimeout(poll, POLL_MS);
      }
    };
    setTimeout(poll, POLL_MS);
  }

  // Formats load in the background so step 2 is ready when the upload answers.
  loadFormats().catch(() => {
    /* retried on upload, which reports the error */
  });
})();
