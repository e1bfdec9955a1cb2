// onestack dashboard: the small script layer (no framework, nothing fetched from elsewhere).
// - a <tbody data-refresh=URL data-interval=MS> reloads its rows from URL (server-rendered,
//   escaped HTML) while the page is visible: the live instance list; with data-refresh=""
//   the rows come from the same tbody (by id) of this page fetched again;
// - a button with data-confirm asks first; a select with data-autosubmit posts its form;
// - a form with data-download (a file as its answer) reloads the page after it was sent;
// - a form with data-upload=URL sends its file as the raw body of a POST to URL (the CSRF
//   token in a header), with a progress bar, then reloads the page;
// - an input[type=file][data-fills=NAME] reads its text file into its form's field NAME
//   (a stack's template: the form then posts it as text).
"use strict";

function refresh(body) {
  const url = body.dataset.refresh;
  const every = parseInt(body.dataset.interval || "5000", 10);
  async function tick() {
    if (document.visibilityState === "visible" && !body.contains(document.activeElement)) {
      try {
        const r = await fetch(url || location.href, {credentials: "same-origin", headers: {"X-Refresh": "1"}});
        if (r.ok && url) body.innerHTML = await r.text();
        else if (r.ok) {  // (parsed, not run: a fetched document executes nothing)
          const fresh = new DOMParser().parseFromString(await r.text(), "text/html").getElementById(body.id);
          if (fresh && !body.contains(document.activeElement)) body.innerHTML = fresh.innerHTML;
        }
      } catch (e) { /* the next tick tries again */ }
    }
    setTimeout(tick, every);
  }
  setTimeout(tick, every);
}

document.addEventListener("DOMContentLoaded", () => {
  document.querySelectorAll("[data-refresh]").forEach(refresh);
  document.querySelectorAll("select[data-autosubmit]").forEach((s) =>
    s.addEventListener("change", () => s.form.submit()));
  document.querySelectorAll("form[data-download]").forEach((f) =>
    f.addEventListener("submit", () => setTimeout(() => location.reload(), 1500)));
  document.querySelectorAll("form[data-upload]").forEach(upload);
  document.querySelectorAll("select[data-toggles]").forEach(toggles);
  document.querySelectorAll("input[type=file][data-fills]").forEach((input) =>
    input.addEventListener("change", async () => {
      if (input.files[0]) input.form.elements[input.dataset.fills].value = await input.files[0].text();
    }));
});

// a select[data-toggles] shows only its form's [data-show-for~=value] fields that fit its value
function toggles(select) {
  const apply = () => select.form.querySelectorAll("[data-show-for]").forEach((el) => {
    el.hidden = !el.dataset.showFor.split(" ").includes(select.value);
  });
  select.addEventListener("change", apply);
  apply();
}

function upload(form) {
  const bar = form.querySelector("progress"), error = form.querySelector(".error");
  form.addEventListener("submit", (e) => {
    e.preventDefault();
    const file = form.elements.file.files[0];
    if (!file) return;
    // the form's other fields go in the query; the named one defaults to the file's name
    const params = new URLSearchParams();
    for (const el of form.elements) {
      if (el.name && el.type !== "file" && !(el.type === "checkbox" && !el.checked)) params.set(el.name, el.value.trim());
    }
    const field = form.dataset.nameField;
    params.set(field, (form.dataset.prefix || "") + (params.get(field) || file.name));
    const xhr = new XMLHttpRequest();
    xhr.open("POST", form.dataset.upload + "?" + params.toString());
    xhr.setRequestHeader("X-CSRF-Token", form.dataset.csrf);
    xhr.setRequestHeader("Content-Type", form.dataset.nameField === "object" && file.type ? file.type : "application/octet-stream");
    bar.hidden = false; error.hidden = true;
    xhr.upload.onprogress = (ev) => { if (ev.lengthComputable) bar.value = 100 * ev.loaded / ev.total; };
    xhr.onload = () => {
      if (xhr.status < 300) { location.reload(); return; }
      const doc = new DOMParser().parseFromString(xhr.responseText, "text/html");
      const msg = doc.querySelector(".error");
      error.textContent = msg ? msg.textContent : "The upload failed (" + xhr.status + ").";
      error.hidden = false; bar.hidden = true;
    };
    xhr.onerror = () => { error.textContent = "The upload failed: no answer."; error.hidden = false; };
    xhr.send(file);
  });
}

document.addEventListener("click", (e) => {
  const b = e.target.closest("[data-confirm]");
  if (b && !window.confirm(b.dataset.confirm)) e.preventDefault();
});
