// Every page: the account menu, copy buttons and confirmations. (The language
// menu's own script is inline in base.html.)
(function () {
  "use strict";
  const strings = JSON.parse(document.getElementById("site-i18n").textContent);

  // Countdowns to the free points' reset (00:00 in the service's time zone).
  const countdowns = document.querySelectorAll("time[data-countdown]");
  function tick() {
    for (const element of countdowns) {
      const left = Math.max(0, Date.parse(element.dateTime) - Date.now());
      const seconds = Math.floor(left / 1000);
      const parts = [Math.floor(seconds / 3600), Math.floor(seconds / 60) % 60, seconds % 60];
      element.textContent = parts.map((part) => String(part).padStart(2, "0")).join(":");
    }
  }
  if (countdowns.length) {
    tick();
    setInterval(tick, 1000);
  }

  // The account menu closes with Escape and when the click lands elsewhere.
  for (const menu of document.querySelectorAll("details.menu")) {
    document.addEventListener("click", (event) => {
      if (menu.open && !menu.contains(event.target)) menu.open = false;
    });
    menu.addEventListener("keydown", (event) => {
      if (event.key === "Escape" && menu.open) {
        menu.open = false;
        menu.querySelector("summary").focus();
      }
    });
  }

  function copyWithSelection(text) {
    const area = document.createElement("textarea");
    area.value = text;
    area.setAttribute("readonly", "");
    area.className = "offscreen";
    document.body.appendChild(area);
    area.select();
    const copied = document.execCommand("copy");
    area.remove();
    return copied;
  }

  // Copy text; resolve to whether it reached the clipboard.
  async function copyText(text) {
    if (navigator.clipboard && window.isSecureContext) {
      try {
        await navigator.clipboard.writeText(text);
        return true;
      } catch (error) {
        // Denied: fall back on the selection below.
      }
    }
    return copyWithSelection(text);
  }

  // Say on the button that it worked, for a moment (and to screen readers).
  async function copyFrom(button, text) {
    const copied = await copyText(text);
    const label = button.dataset.label || button.textContent;
    button.dataset.label = label;
    button.textContent = copied ? strings.copied : strings.copyFailed;
    button.classList.toggle("done", copied);
    window.setTimeout(() => {
      button.textContent = label;
      button.classList.remove("done");
    }, 2000);
    return copied;
  }

  // Buttons that copy another element's text: data-copy-target="<id>".
  document.addEventListener("click", (event) => {
    const button = event.target.closest("[data-copy-target]");
    if (!button) return;
    const source = document.getElementById(button.dataset.copyTarget);
    if (source) copyFrom(button, source.textContent.trim());
  });

  const dialog = document.getElementById("confirm-dialog");

  // Ask in the page's own dialog; resolve to whether the person confirmed.
  function confirmAction(message, confirmLabel) {
    if (!dialog || typeof dialog.showModal !== "function") {
      return Promise.resolve(window.confirm(message));
    }
    document.getElementById("confirm-dialog-message").textContent = message;
    const ok = document.getElementById("confirm-dialog-ok");
    if (!ok.dataset.defaultLabel) ok.dataset.defaultLabel = ok.textContent;
    ok.textContent = confirmLabel || ok.dataset.defaultLabel;
    dialog.returnValue = "cancel";
    dialog.showModal();
    // The safe choice has the focus, so Enter cancels.
    dialog.querySelector("button[value=cancel]").focus();
    return new Promise((resolve) => {
      dialog.addEventListener(
        "close",
        () => resolve(dialog.returnValue === "confirm"),
        { once: true }
      );
    });
  }

  // Forms whose submit button carries data-confirm="question" ask first.
  document.addEventListener("submit", async (event) => {
    const button = event.submitter;
    if (!button || !button.dataset.confirm || button.dataset.confirmed) return;
    event.preventDefault();
    if (await confirmAction(button.dataset.confirm, button.dataset.confirmLabel)) {
      button.dataset.confirmed = "yes";
      event.target.requestSubmit(button);
    }
  });

  window.Eora = { copyText: copyText, copyFrom: copyFrom, confirmAction: confirmAction };
})();
