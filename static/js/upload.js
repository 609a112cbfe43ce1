/* The upload page: file choice (drop or picker), header sniffing for the column mapping, and the
 * chunked, resumable upload of large files through the REST API (/api/v1/uploads/, session auth).
 *
 * Small files are sent by the form itself (a normal POST the server validates and re-renders with
 * errors). Large files: POST an upload session with the form's fields, PUT chunks at the server's
 * offset while hashing the file with SHA-256, POST finish with the digest. The session id is kept
 * in localStorage, so after a reload (or a lost connection) choosing the same file again continues
 * from the server's offset.
 */
(function () {
  "use strict";

  const form = document.getElementById("upload-form");
  if (!form) return;
  const config = JSON.parse(document.getElementById("upload-config").textContent);
  const modalities = JSON.parse(document.getElementById("modality-info").textContent);
  const tasks = JSON.parse(document.getElementById("task-info").textContent);
  const fileInput = document.getElementById("upload-file");
  const dropzone = document.getElementById("upload-dropzone");
  const fileName = document.getElementById("upload-file-name");
  const modalitySelect = document.getElementById("id_modality");
  const taskSelect = document.getElementById("id_task");
  const nameInput = document.getElementById("id_name");
  const submit = document.getElementById("upload-submit");
  const progress = document.getElementById("upload-progress");
  const progressBar = document.getElementById("upload-progress-bar");
  const statusLine = document.getElementById("upload-status");
  const errorBox = document.getElementById("upload-error");
  const resumeBox = document.getElementById("upload-resume");
  const STORE_KEY = "labformer.upload." + config.user;
  const MAPPING_ROLES = ["input_cols", "target_cols", "id_col", "group_col", "split_col"];
  let chosen = null; // the File to send
  let columns = []; // detected header columns

  // --- small helpers -----------------------------------------------------------------------------

  function csrfToken() {
    return form.querySelector("input[name=csrfmiddlewaretoken]").value;
  }

  function setProgress(fraction, text) {
    progress.classList.remove("d-none");
    const pct = Math.max(0, Math.min(100, Math.floor(fraction * 100)));
    progressBar.style.width = pct + "%";
    progressBar.textContent = pct + "%";
    progress.setAttribute("aria-valuenow", String(pct));
    if (text !== undefined) statusLine.textContent = text;
  }

  function humanBytes(n) {
    const units = ["bytes", "KB", "MB", "GB", "TB"];
    let i = 0;
    while (n >= 1024 && i < units.length - 1) { n /= 1024; i += 1; }
    return (i === 0 ? n : n.toFixed(1)) + " " + units[i];
  }

  function clearErrors() {
    errorBox.classList.add("d-none");
    errorBox.textContent = "";
    form.querySelectorAll(".is-invalid").forEach((el) => el.classList.remove("is-invalid"));
    form.querySelectorAll("[id^=error-]").forEach((el) => { el.textContent = ""; });
  }

  function showError(field, message) {
    const target = document.getElementById("error-" + field);
    const control = field === "file" ? fileInput : document.getElementById("id_" + field);
    if (target && control) {
      target.textContent = message;
      control.classList.add("is-invalid");
      if (field === "file") dropzone.classList.add("border-danger");
      return true;
    }
    return false;
  }

  /** Show an API error body ({"error": {"message", "fields"}}) next to the fields it names. */
  function showApiError(body, fallback) {
    const err = (body && body.error) || {};
    const fields = err.fields || {};
    let shown = false;
    for (const [key, value] of Object.entries(fields)) {
      if (key === "mapping" && value && typeof value === "object" && !Array.isArray(value)) {
        for (const [inner, messages] of Object.entries(value)) {
          shown = showError(inner, [].concat(messages).join(" ")) || shown;
        }
        continue;
      }
      const field = key === "size_bytes" || key === "filename" ? "file" : key;
      shown = showError(field, [].concat(value).join(" ")) || shown;
    }
    if (!shown) {
      errorBox.textContent = err.message || fallback;
      errorBox.classList.remove("d-none");
    }
  }

  // --- modality and task -------------------------------------------------------------------------

  function modalityChanged() {
    const info = modalities[modalitySelect.value];
    if (!info) return;
    document.getElementById("modality-help").textContent = info.description;
    for (const option of taskSelect.options) {
      if (!option.value) continue;
      const fits = tasks[option.value].modality === modalitySelect.value;
      option.hidden = !fits;
      option.disabled = !fits;
    }
    if (taskSelect.value && tasks[taskSelect.value].modality !== modalitySelect.value) taskSelect.value = "";
    refreshMappingControls();
  }

  function defaultLabel(role) {
    const info = modalities[modalitySelect.value] || {};
    const task = tasks[taskSelect.value];
    if (role === "input_cols") {
      if (info.input_format === "table") return "default: every column not used below";
      if (info.input_format === "long") return "default: " + info.default_input_col + " (object id)";
      return "default: " + (info.default_input_col || "the record");
    }
    if (role === "target_cols") return task ? "default: " + task.default_target_col : "default: none (no task chosen)";
    return "none";
  }

  function multipleFor(role) {
    const info = modalities[modalitySelect.value] || {};
    return role === "target_cols" || (role === "input_cols" && info.input_format === "table");
  }

  function currentValues(control) {
    if (control.tagName === "SELECT") return Array.from(control.selectedOptions).map((o) => o.value).filter(Boolean);
    return control.value.split(",").map((s) => s.trim()).filter(Boolean);
  }

  function findColumn(name) {
    if (!name) return null;
    return columns.find((c) => c === name) || columns.find((c) => c.toLowerCase() === name.toLowerCase()) || null;
  }

  /** Text boxes while no header is known; selects offering the header's columns once it is. */
  function refreshMappingControls() {
    for (const role of MAPPING_ROLES) {
      const control = document.getElementById("id_" + role);
      const values = currentValues(control);
      const invalid = control.classList.contains("is-invalid");
      let replacement;
      if (columns.length) {
        replacement = document.createElement("select");
        replacement.multiple = multipleFor(role);
        if (replacement.multiple) replacement.size = Math.min(6, columns.length + 1);
        replacement.className = "form-select";
        const blank = new Option(defaultLabel(role), "");
        replacement.add(blank);
        const known = values.map(findColumn).filter(Boolean);
        for (const c of columns) replacement.add(new Option(c, c, false, known.includes(c)));
        // Values typed before that the header lacks stay visible (and are reported by the server).
        for (const v of values) if (!findColumn(v)) replacement.add(new Option(v + " (not in the header)", v, false, true));
        if (!replacement.multiple && !values.length) blank.selected = true;
      } else {
        replacement = document.createElement("input");
        replacement.type = "text";
        replacement.className = "form-control";
        replacement.placeholder = defaultLabel(role);
        replacement.value = values.join(", ");
      }
      replacement.name = role;
      replacement.id = control.id;
      replacement.dataset.columnRole = role;
      if (invalid) replacement.classList.add("is-invalid");
      control.replaceWith(replacement);
    }
  }

  /** Preselect the columns the defaults would use, so the user sees what will happen. */
  function guessMapping() {
    const info = modalities[modalitySelect.value] || {};
    const task = tasks[taskSelect.value];
    const pick = (role, name) => {
      const control = document.getElementById("id_" + role);
      const col = findColumn(name);
      if (control.tagName !== "SELECT" || !col || currentValues(control).length) return;
      for (const o of control.options) o.selected = o.value === col;
    };
    if (info.input_format !== "table") pick("input_cols", guessedInput || info.default_input_col);
    pick("target_cols", task ? task.default_target_col : (findColumn("label") || findColumn("target")));
    pick("split_col", "split");
    checkMapping();
  }

  // --- the modality, guessed on the server from the first bytes (mlcore.guess: the rules live once) ---

  let guessedModality = null; // the last guess, so a later file may replace it but never the user's choice
  let guessedInput = null;
  async function guessModality(file) {
    const note = document.getElementById("modality-guess");
    note.textContent = "";
    guessedInput = null;
    try {
      const response = await fetch(config.guessUrl + "?filename=" + encodeURIComponent(file.name), {
        method: "POST", body: file.slice(0, config.guessBytes),
        headers: { "X-CSRFToken": csrfToken(), "Content-Type": "application/octet-stream", Accept: "application/json" },
      });
      if (!response.ok) return;
      const guess = await response.json();
      if (!guess.modality) {
        if (!modalitySelect.value) note.textContent = "The modality could not be told from the first records: choose it.";
        return;
      }
      if (modalitySelect.value && modalitySelect.value !== guessedModality) {
        if (modalitySelect.value !== guess.modality) {
          note.textContent = "The file looks like " + modalities[guess.modality].label.toLowerCase() + " (" + guess.reason + ").";
        }
        return; // the user chose: a guess never overrides it
      }
      guessedModality = guess.modality;
      guessedInput = guess.input_col;
      modalitySelect.value = guess.modality;
      note.textContent = "Guessed from the file: " + guess.reason + ". Change it if that is wrong.";
      modalityChanged();
      guessMapping();
    } catch (err) { /* no guess: the user chooses, and the server guesses again on submit */ }
  }

  // --- the mapping, checked against the header before anything is sent ---------------------------------

  function checkMapping() {
    const warning = document.getElementById("upload-mapping-warning");
    const problems = [];
    if (columns.length) {
      for (const role of MAPPING_ROLES) {
        const control = document.getElementById("id_" + role);
        const missing = currentValues(control).filter((v) => !findColumn(v));
        if (missing.length) problems.push(missing.join(", ") + " (" + role.replace("_cols", "").replace("_col", "") + ") is not in the file's header");
      }
      const task = tasks[taskSelect.value];
      const targets = currentValues(document.getElementById("id_target_cols"));
      if (task && !targets.length && !findColumn(task.default_target_col)) {
        problems.push(task.label + " reads its target from a column '" + task.default_target_col + "', which the file lacks: choose the target column");
      }
    }
    warning.textContent = problems.length ? "Check the mapping: " + problems.join("; ") + ". Columns: " + columns.join(", ") + "." : "";
    warning.classList.toggle("d-none", !problems.length);
  }

  // --- reading the header in the browser ------------------------------------------------------------

  async function firstBytes(file, limit) {
    const head = new Uint8Array(await file.slice(0, Math.min(file.size, 4)).arrayBuffer());
    if (head[0] === 0x1f && head[1] === 0x8b && typeof DecompressionStream !== "undefined") {
      const reader = file.stream().pipeThrough(new DecompressionStream("gzip")).getReader();
      const parts = [];
      let total = 0;
      try {
        while (total < limit) {
          const { value, done } = await reader.read();
          if (done) break;
          parts.push(value);
          total += value.length;
        }
      } finally {
        reader.cancel().catch(() => {});
      }
      const out = new Uint8Array(total);
      let at = 0;
      for (const p of parts) { out.set(p, at); at += p.length; }
      return { bytes: out.subarray(0, limit), compressed: true };
    }
    return { bytes: new Uint8Array(await file.slice(0, limit).arrayBuffer()), compressed: false };
  }

  /** One CSV/TSV line split into fields, honouring double quotes. */
  function splitLine(line, delimiter) {
    const out = [];
    let field = "";
    let quoted = false;
    for (let i = 0; i < line.length; i++) {
      const ch = line[i];
      if (quoted) {
        if (ch === '"' && line[i + 1] === '"') { field += '"'; i++; }
        else if (ch === '"') quoted = false;
        else field += ch;
      } else if (ch === '"') quoted = true;
      else if (ch === delimiter) { out.push(field.trim()); field = ""; }
      else field += ch;
    }
    out.push(field.trim());
    return out;
  }

  async function detectColumns(file) {
    const none = document.getElementById("upload-columns-none");
    const found = document.getElementById("upload-columns");
    none.classList.add("d-none");
    found.classList.add("d-none");
    columns = [];
    let note = "";
    try {
      const { bytes } = await firstBytes(file, 64 * 1024);
      const magic = String.fromCharCode(...bytes.subarray(0, 4));
      const text = new TextDecoder("utf-8", { fatal: false }).decode(bytes);
      const name = file.name.toLowerCase().replace(/\.gz$/, "");
      if (magic === "PAR1") note = "A Parquet file: its columns are read on the server; type the column names if they differ from the defaults.";
      else if (text.startsWith(">") || /\.(fasta|fa|faa|fna)$/.test(name)) note = "A FASTA file: the sequence is each record's body, the id and labels come from its header line.";
      else if (/\.sdf$/.test(name) || text.includes("M  END")) note = "An SDF file: molecules are read from the blocks; properties become columns on the server.";
      else {
        const line = text.split(/\r?\n/)[0].replace(/^\uFEFF/, "");
        const delimiter = name.endsWith(".tsv") || (line.includes("\t") && !line.includes(",")) ? "\t" : ",";
        columns = splitLine(line, delimiter).filter(Boolean);
        if (!columns.length) note = "No header line found: the first line of the file is empty.";
      }
    } catch (err) {
      note = "The header could not be read in the browser (" + err.message + "); type the column names.";
    }
    if (columns.length) {
      document.getElementById("upload-columns-list").textContent = columns.join(", ");
      found.classList.remove("d-none");
    } else if (note) {
      none.textContent = note;
      none.classList.remove("d-none");
    }
    refreshMappingControls();
    guessMapping();
    await guessModality(file);
  }

  // --- choosing a file ------------------------------------------------------------------------------

  function fileChosen(file) {
    chosen = file;
    clearErrors();
    const again = document.getElementById("upload-choose-again");
    if (again) again.remove();
    fileName.textContent = file.name + " · " + humanBytes(file.size) +
      (file.size > config.chunkedThreshold ? " · sent in resumable chunks" : "");
    if (!nameInput.value.trim()) nameInput.value = file.name.replace(/(\.gz)?$/i, "").replace(/\.[^.]+$/, "");
    detectColumns(file);
    const saved = loadSaved();
    if (saved && saved.filename === file.name && saved.size === file.size && saved.lastModified === file.lastModified) {
      restoreFields(saved.fields);
      statusLine.textContent = "This file continues the stopped upload: press the button to resume.";
    }
  }

  fileInput.addEventListener("change", () => { if (fileInput.files.length) fileChosen(fileInput.files[0]); });
  ["dragenter", "dragover"].forEach((type) => dropzone.addEventListener(type, (event) => {
    event.preventDefault();
    dropzone.classList.add("lf-dragover");
  }));
  ["dragleave", "drop"].forEach((type) => dropzone.addEventListener(type, () => dropzone.classList.remove("lf-dragover")));
  dropzone.addEventListener("drop", (event) => {
    event.preventDefault();
    const files = event.dataTransfer.files;
    if (!files.length) return;
    // Put the dropped file into the input too, so a small file goes with the form's own POST.
    const transfer = new DataTransfer();
    transfer.items.add(files[0]);
    fileInput.files = transfer.files;
    fileChosen(files[0]);
  });
  modalitySelect.addEventListener("change", () => { modalityChanged(); guessMapping(); });
  taskSelect.addEventListener("change", () => { refreshMappingControls(); guessMapping(); });
  modalitySelect.addEventListener("change", () => { guessedModality = null; });
  document.getElementById("column-mapping").addEventListener("change", checkMapping);

  // --- the saved (resumable) upload ---------------------------------------------------------------------

  function loadSaved() {
    try { return JSON.parse(localStorage.getItem(STORE_KEY) || "null"); } catch (err) { return null; }
  }

  function formFields() {
    const data = new FormData(form);
    const fields = {};
    for (const key of ["name", "lab", "modality", "task", "visibility", "policy", "description", "id_col", "group_col", "split_col"]) {
      fields[key] = (data.get(key) || "").toString();
    }
    fields.input_cols = currentValues(document.getElementById("id_input_cols"));
    fields.target_cols = currentValues(document.getElementById("id_target_cols"));
    return fields;
  }

  function restoreFields(fields) {
    for (const [key, value] of Object.entries(fields || {})) {
      if (key === "policy") {
        const radio = document.getElementById("id_policy_" + value);
        if (radio) radio.checked = true;
        continue;
      }
      const control = document.getElementById("id_" + key);
      if (!control) continue;
      if (Array.isArray(value)) {
        if (control.tagName === "SELECT") for (const o of control.options) o.selected = value.includes(o.value);
        else control.value = value.join(", ");
      } else {
        control.value = value;
        if (key === "modality") modalityChanged();
      }
    }
  }

  async function showSavedUpload() {
    const saved = loadSaved();
    if (!saved) return;
    try {
      const response = await fetch(config.sessionsUrl + saved.id + "/", { headers: { Accept: "application/json" } });
      if (response.status === 404) { localStorage.removeItem(STORE_KEY); return; }
      if (!response.ok) return;
      const session = await response.json();
      if (session.status === "finished" && session.dataset) {
        localStorage.removeItem(STORE_KEY);
        return;
      }
      if (session.status !== "open") { localStorage.removeItem(STORE_KEY); return; }
      document.getElementById("upload-resume-file").textContent = saved.filename + " (" + humanBytes(saved.size) + ")";
      document.getElementById("upload-resume-percent").textContent =
        Math.floor((100 * session.offset) / session.size_bytes) + "%";
      resumeBox.classList.remove("d-none");
      restoreFields(saved.fields);
    } catch (err) { /* offline: the banner stays hidden, nothing is lost */ }
  }

  document.getElementById("upload-resume-discard").addEventListener("click", () => {
    localStorage.removeItem(STORE_KEY);
    resumeBox.classList.add("d-none");
  });

  // --- SHA-256, incremental (SubtleCrypto only hashes whole buffers; files here can be gigabytes) -------

  const K = new Uint32Array([
    0x428a2f98, 0x71374491, 0xb5c0fbcf, 0xe9b5dba5, 0x3956c25b, 0x59f111f1, 0x923f82a4, 0xab1c5ed5,
    0xd807aa98, 0x12835b01, 0x243185be, 0x550c7dc3, 0x72be5d74, 0x80deb1fe, 0x9bdc06a7, 0xc19bf174,
    0xe49b69c1, 0xefbe4786, 0x0fc19dc6, 0x240ca1cc, 0x2de92c6f, 0x4a7484aa, 0x5cb0a9dc, 0x76f988da,
    0x983e5152, 0xa831c66d, 0xb00327c8, 0xbf597fc7, 0xc6e00bf3, 0xd5a79147, 0x06ca6351, 0x14292967,
    0x27b70a85, 0x2e1b2138, 0x4d2c6dfc, 0x53380d13, 0x650a7354, 0x766a0abb, 0x81c2c92e, 0x92722c85,
    0xa2bfe8a1, 0xa81a664b, 0xc24b8b70, 0xc76c51a3, 0xd192e819, 0xd6990624, 0xf40e3585, 0x106aa070,
    0x19a4c116, 0x1e376c08, 0x2748774c, 0x34b0bcb5, 0x391c0cb3, 0x4ed8aa4a, 0x5b9cca4f, 0x682e6ff3,
    0x748f82ee, 0x78a5636f, 0x84c87814, 0x8cc70208, 0x90befffa, 0xa4506ceb, 0xbef9a3f7, 0xc67178f2,
  ]);

  class Sha256 {
    constructor() {
      this.h = new Uint32Array([0x6a09e667, 0xbb67ae85, 0x3c6ef372, 0xa54ff53a, 0x510e527f, 0x9b05688c, 0x1f83d9ab, 0x5be0cd19]);
      this.w = new Uint32Array(64);
      this.buffer = new Uint8Array(64);
      this.buffered = 0;
      this.length = 0; // bytes hashed so far
    }

    block(bytes, at) {
      const w = this.w;
      const h = this.h;
      for (let i = 0; i < 16; i++) {
        const j = at + i * 4;
        w[i] = (bytes[j] << 24) | (bytes[j + 1] << 16) | (bytes[j + 2] << 8) | bytes[j + 3];
      }
      for (let i = 16; i < 64; i++) {
        const a = w[i - 15], b = w[i - 2];
        const s0 = ((a >>> 7) | (a << 25)) ^ ((a >>> 18) | (a << 14)) ^ (a >>> 3);
        const s1 = ((b >>> 17) | (b << 15)) ^ ((b >>> 19) | (b << 13)) ^ (b >>> 10);
        w[i] = (w[i - 16] + s0 + w[i - 7] + s1) | 0;
      }
      let a = h[0], b = h[1], c = h[2], d = h[3], e = h[4], f = h[5], g = h[6], k = h[7];
      for (let i = 0; i < 64; i++) {
        const S1 = ((e >>> 6) | (e << 26)) ^ ((e >>> 11) | (e << 21)) ^ ((e >>> 25) | (e << 7));
        const t1 = (k + S1 + ((e & f) ^ (~e & g)) + K[i] + w[i]) | 0;
        const S0 = ((a >>> 2) | (a << 30)) ^ ((a >>> 13) | (a << 19)) ^ ((a >>> 22) | (a << 10));
        const t2 = (S0 + ((a & b) ^ (a & c) ^ (b & c))) | 0;
        k = g; g = f; f = e; e = (d + t1) | 0; d = c; c = b; b = a; a = (t1 + t2) | 0;
      }
      h[0] += a; h[1] += b; h[2] += c; h[3] += d; h[4] += e; h[5] += f; h[6] += g; h[7] += k;
    }

    update(bytes) {
      let i = 0;
      this.length += bytes.length;
      if (this.buffered) {
        while (this.buffered < 64 && i < bytes.length) this.buffer[this.buffered++] = bytes[i++];
        if (this.buffered < 64) return;
        this.block(this.buffer, 0);
        this.buffered = 0;
      }
      for (; i + 64 <= bytes.length; i += 64) this.block(bytes, i);
      while (i < bytes.length) this.buffer[this.buffered++] = bytes[i++];
    }

    hex() {
      const bits = this.length * 8;
      const tail = new Uint8Array(((this.buffered + 9 + 63) >> 6) << 6);
      tail.set(this.buffer.subarray(0, this.buffered));
      tail[this.buffered] = 0x80;
      const view = new DataView(tail.buffer);
      view.setUint32(tail.length - 8, Math.floor(bits / 0x100000000));
      view.setUint32(tail.length - 4, bits >>> 0);
      for (let i = 0; i < tail.length; i += 64) this.block(tail, i);
      return Array.from(this.h, (x) => x.toString(16).padStart(8, "0")).join("");
    }
  }

  // --- the chunked upload -------------------------------------------------------------------------------

  async function api(method, url, body, headers) {
    const response = await fetch(url, {
      method,
      body,
      credentials: "same-origin",
      headers: Object.assign({ "X-CSRFToken": csrfToken(), Accept: "application/json" }, headers || {}),
    });
    let data = null;
    try { data = await response.json(); } catch (err) { data = null; }
    return { ok: response.ok, status: response.status, data };
  }

  async function openSession(file, fields) {
    const saved = loadSaved();
    if (saved && saved.filename === file.name && saved.size === file.size && saved.lastModified === file.lastModified) {
      const current = await api("GET", config.sessionsUrl + saved.id + "/");
      if (current.ok && current.data.status === "open") return current.data;
      localStorage.removeItem(STORE_KEY);
    }
    const mapping = {};
    if (fields.input_cols.length) mapping.input_cols = fields.input_cols;
    if (fields.target_cols.length) mapping.target_cols = fields.target_cols;
    for (const key of ["id_col", "group_col", "split_col"]) if (fields[key].trim()) mapping[key] = fields[key].trim();
    if (fields.task) mapping.task = fields.task;
    const created = await api("POST", config.sessionsUrl, JSON.stringify({
      name: fields.name, filename: file.name, lab: fields.lab, modality: fields.modality, size_bytes: file.size,
      visibility: fields.visibility, policy: fields.policy, description: fields.description, mapping,
    }), { "Content-Type": "application/json" });
    if (!created.ok) {
      showApiError(created.data, "The upload could not start (HTTP " + created.status + ").");
      return null;
    }
    localStorage.setItem(STORE_KEY, JSON.stringify({
      id: created.data.id, filename: file.name, size: file.size, lastModified: file.lastModified, fields,
    }));
    return created.data;
  }

  async function chunkedUpload(file) {
    const fields = formFields();
    if (!fields.name.trim()) { showError("name", "A dataset needs a name."); return false; }
    setProgress(0, "Starting the upload…");
    const session = await openSession(file, fields);
    if (!session) return false;
    const hasher = new Sha256();
    let offset = session.offset;
    let failures = 0;
    const ascii = file.name.replace(/[^\x20-\x7e]/g, "_").replace(/"/g, "_") || "upload";
    while (offset < file.size) {
      // Hash what an earlier page already sent (read locally, not sent again).
      while (hasher.length < offset) {
        const end = Math.min(offset, hasher.length + config.chunkBytes);
        hasher.update(new Uint8Array(await file.slice(hasher.length, end).arrayBuffer()));
        setProgress(offset / file.size, "Checking the part sent before… " + humanBytes(hasher.length));
      }
      const end = Math.min(file.size, offset + config.chunkBytes);
      const bytes = new Uint8Array(await file.slice(offset, end).arrayBuffer());
      let result;
      try {
        result = await api("PUT", config.sessionsUrl + session.id + "/chunk/?offset=" + offset, bytes, {
          "Content-Type": "application/octet-stream", "Content-Disposition": 'attachment; filename="' + ascii + '"',
        });
      } catch (err) {
        result = { ok: false, status: 0, data: null };
      }
      if (result.ok) {
        if (hasher.length === offset) hasher.update(bytes);
        offset = result.data.offset;
        failures = 0;
        setProgress(offset / file.size, humanBytes(offset) + " of " + humanBytes(file.size) + " sent");
        continue;
      }
      const code = result.data && result.data.error && result.data.error.code;
      const retryable = result.status === 0 || result.status >= 500 || result.status === 429 || code === "offset_mismatch";
      failures += 1;
      if (!retryable || failures > 5) {
        showApiError(result.data, "The upload stopped (HTTP " + result.status + "). Reload the page and choose the file again to resume.");
        return false;
      }
      setProgress(offset / file.size, "The connection hiccupped; asking the server where to continue…");
      await new Promise((resolve) => setTimeout(resolve, 1000 * failures));
      const current = await api("GET", config.sessionsUrl + session.id + "/").catch(() => null);
      if (current && current.ok) {
        offset = current.data.offset;
        if (hasher.length > offset) {  // the server has less than we hashed: hash again from the start
          Object.assign(hasher, new Sha256());
        }
      }
    }
    while (hasher.length < file.size) {  // a session whose bytes had all arrived before a reload
      const end = Math.min(file.size, hasher.length + config.chunkBytes);
      hasher.update(new Uint8Array(await file.slice(hasher.length, end).arrayBuffer()));
    }
    setProgress(1, "Checking the file's SHA-256 on the server…");
    const finished = await api("POST", config.sessionsUrl + session.id + "/finish/",
      JSON.stringify({ sha256: hasher.hex() }), { "Content-Type": "application/json" });
    if (!finished.ok) {
      if (finished.data && finished.data.error && finished.data.error.code === "checksum_mismatch") localStorage.removeItem(STORE_KEY);
      showApiError(finished.data, "The server could not finish the upload (HTTP " + finished.status + ").");
      return false;
    }
    localStorage.removeItem(STORE_KEY);
    statusLine.textContent = "Uploaded. Opening the dataset…";
    window.location.assign(config.datasetUrl.replace("/0/", "/" + finished.data.id + "/"));
    return true;
  }

  form.addEventListener("submit", async (event) => {
    clearErrors();
    const file = chosen || (fileInput.files.length ? fileInput.files[0] : null);
    if (!file) {
      event.preventDefault();
      showError("file", "Choose a file to upload.");
      return;
    }
    if (file.size > config.maxBytes) {
      event.preventDefault();
      showError("file", file.name + " is " + humanBytes(file.size) + ", over the upload limit of " + humanBytes(config.maxBytes) + ".");
      return;
    }
    if (file.size <= config.chunkedThreshold) {
      // The form posts it; the bar shows that something is happening until the next page arrives.
      setProgress(1, "Uploading " + humanBytes(file.size) + "…");
      submit.disabled = true;
      return;
    }
    event.preventDefault();
    submit.disabled = true;
    try {
      if (!(await chunkedUpload(file))) submit.disabled = false;
    } catch (err) {
      errorBox.textContent = "The upload stopped: " + err.message + ". Choose the file again to resume.";
      errorBox.classList.remove("d-none");
      submit.disabled = false;
    }
  });

  modalityChanged();
  showSavedUpload();
})();
