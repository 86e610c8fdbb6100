// medvault pages: the little script the pages use. Every page works without it, except the
// per-file upload progress. Served from this origin only (CSP script-src 'self').
"use strict";

// Uploads: <form data-upload data-upload-url=".../{filename}" data-csrf="...">
// with an <input type=file multiple>, an optional <select name=kind> and a <ul class=uploads>.
// Each file is sent as its own request (raw body), with a progress bar and its own message.
function uploadOne(form, file, list) {
  const item = document.createElement("li");
  const name = document.createElement("span");
  name.textContent = file.name;
  const bar = document.createElement("progress");
  bar.max = 100; bar.value = 0;
  bar.setAttribute("aria-label", file.name);
  const status = document.createElement("span");
  status.textContent = form.dataset.msgUploading || "Uploading";
  item.append(name, bar, status);
  list.append(item);
  return new Promise((resolve) => {
    const xhr = new XMLHttpRequest();
    let url = form.dataset.uploadUrl.replace("{filename}", encodeURIComponent(file.name));
    const kind = form.querySelector("[name=kind]");
    if (kind) url += (url.includes("?") ? "&" : "?") + "kind=" + encodeURIComponent(kind.value);
    xhr.open("POST", url);
    xhr.setRequestHeader("X-CSRF-Token", form.dataset.csrf);
    xhr.setRequestHeader("Accept", "application/json");
    xhr.setRequestHeader("Content-Type", file.type || "application/octet-stream");
    xhr.upload.addEventListener("progress", (event) => {
      if (event.lengthComputable) bar.value = Math.round((100 * event.loaded) / event.total);
    });
    xhr.addEventListener("load", () => {
      let answer = {};
      try { answer = JSON.parse(xhr.responseText); } catch (error) { answer = {}; }
      // Stored only when the upload route itself answered so (an expired session would be
      // redirected to the sign-in page, which also answers 200, but with HTML).
      if (xhr.status >= 200 && xhr.status < 300 && answer.message) {
        bar.value = 100;
        item.className = "done";
        status.textContent = answer.message || form.dataset.msgDone || "Stored";
        resolve(true);
      } else {
        item.className = "failed";
        status.textContent = answer.message || answer.detail || answer.title || form.dataset.msgFailed || "Refused";
        resolve(false);
      }
    });
    xhr.addEventListener("error", () => {
      item.className = "failed";
      status.textContent = form.dataset.msgFailed || "Refused";
      resolve(false);
    });
    xhr.send(file);
  });
}

function enableUploads(form) {
  // Without the script the form sends one file at a time; with it, each file goes on its own.
  form.querySelector("input[type=file]").multiple = true;
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const input = form.querySelector("input[type=file]");
    const list = form.querySelector(".uploads");
    const files = Array.from(input.files || []);
    if (!files.length) { input.focus(); return; }
    const results = [];
    for (const file of files) results.push(await uploadOne(form, file, list));
    input.value = "";
    const done = form.querySelector("[data-upload-done]");
    if (done) { done.hidden = false; }
    form.dispatchEvent(new CustomEvent("uploads-finished", { detail: { results } }));
  });
}

// <button data-copy="element-id">: copies that element's text, says so in data-copied.
function enableCopy(button) {
  button.hidden = false;
  button.addEventListener("click", async () => {
    const source = document.getElementById(button.dataset.copy);
    try {
      await navigator.clipboard.writeText(source.textContent.trim());
      button.textContent = button.dataset.copied || "Copied";
    } catch (error) {
      const range = document.createRange();
      range.selectNodeContents(source);
      const selection = window.getSelection();
      selection.removeAllRanges(); selection.addRange(range);
    }
  });
}

// <form data-confirm="Really?">: asks before a destructive action.
function enableConfirm(form) {
  form.addEventListener("submit", (event) => {
    if (!window.confirm(form.dataset.confirm)) event.preventDefault();
  });
}

// <element data-poll-url="..." data-poll-label>: polls a JSON {label, done} every 2 s and
// shows its label; reloads the page once it is done.
function enablePolling(element) {
  const tick = async () => {
    try {
      const answer = await (await fetch(element.dataset.pollUrl, { headers: { Accept: "application/json" } })).json();
      if (answer.label) element.textContent = answer.label;
      if (answer.done) { window.location.reload(); return; }
    } catch (error) { /* try again on the next tick */ }
    window.setTimeout(tick, 2000);
  };
  window.setTimeout(tick, 2000);
}

document.addEventListener("DOMContentLoaded", () => {
  document.querySelectorAll("form[data-upload]").forEach(enableUploads);
  document.querySelectorAll("button[data-copy]").forEach(enableCopy);
  document.querySelectorAll("form[data-confirm]").forEach(enableConfirm);
  document.querySelectorAll("[data-poll-url]").forEach(enablePolling);
});
