// Conversations: rename and delete them (PATCH and DELETE /api/conversations/<id>),
// and on a phone open the chat list as a drawer.
(function () {
  "use strict";
  const strings = JSON.parse(document.getElementById("chat-i18n").textContent);
  const chat = document.getElementById("chat");
  const source = chat || document.getElementById("chat-search");
  const apiUrl = source ? source.dataset.apiConversationsUrl : null;
  const csrfInput = document.querySelector("input[name=csrfmiddlewaretoken]");

  function csrfToken() {
    if (csrfInput) return csrfInput.value;
    const match = document.cookie.match(/(?:^|;\s*)csrftoken=([^;]+)/);
    return match ? decodeURIComponent(match[1]) : "";
  }

  async function callApi(method, id, body) {
    const response = await fetch(apiUrl + "/" + encodeURIComponent(id), {
      method: method,
      credentials: "same-origin",
      headers: {
        "Content-Type": "application/json",
        Accept: "application/json",
        "X-CSRFToken": csrfToken(),
      },
      body: body === undefined ? undefined : JSON.stringify(body),
    });
    const answer = await response.json();
    if (!response.ok) throw new Error(answer.error || strings.actionFailed);
    return answer;
  }

  function currentId() {
    return chat ? chat.dataset.sessionId : "";
  }

  // Renaming -------------------------------------------------------------------------

  const renameDialog = document.getElementById("rename-dialog");
  const renameInput = document.getElementById("rename-title");
  const renameError = document.getElementById("rename-error");
  let renaming = null;
  let renameOpener = null;

  function openRename(id, title, opener) {
    renaming = id;
    renameOpener = opener;
    renameInput.value = title;
    renameError.hidden = true;
    renameDialog.showModal();
    renameInput.select();
  }

  renameDialog.addEventListener("close", function () {
    if (renameOpener) renameOpener.focus();
  });

  document.getElementById("rename-form").addEventListener("submit", async function (event) {
    if (event.submitter && event.submitter.value === "cancel") return;
    event.preventDefault();
    const title = renameInput.value.trim();
    if (!title) {
      renameInput.focus();
      return;
    }
    try {
      const answer = await callApi("PATCH", renaming, { title: title });
      const saved = answer.conversation.title;
      for (const node of document.querySelectorAll(
        '[data-conversation-title="' + CSS.escape(renaming) + '"]'
      )) {
        node.textContent = saved;
      }
      for (const button of document.querySelectorAll(
        '[data-rename="' + CSS.escape(renaming) + '"]'
      )) {
        button.dataset.title = saved;
      }
      if (renaming === currentId()) document.title = saved + " · EORA points";
      renameDialog.close("save");
    } catch (error) {
      renameError.textContent = error.message;
      renameError.hidden = false;
    }
  });

  // Deleting -------------------------------------------------------------------------

  function removeItem(id) {
    for (const item of document.querySelectorAll(
      '[data-conversation-item="' + CSS.escape(id) + '"]'
    )) {
      const group = item.parentElement;
      item.remove();
      if (group && !group.children.length) {
        const label = group.previousElementSibling;
        if (label && label.classList.contains("group-label")) label.remove();
        const section = group.closest(".conversation-group");
        group.remove();
        if (section) section.remove();
      }
    }
  }

  async function deleteConversation(id) {
    const confirmed = await window.Eora.confirmAction(
      strings.deleteConfirm,
      strings.delete
    );
    if (!confirmed) return;
    try {
      await callApi("DELETE", id);
    } catch (error) {
      window.alert(error.message);
      return;
    }
    if (id === currentId()) {
      window.location.assign(chat.dataset.chatsUrl);
      return;
    }
    removeItem(id);
  }

  document.addEventListener("click", function (event) {
    const button = event.target.closest(
      "[data-rename], [data-delete], [data-rename-current], [data-delete-current]"
    );
    if (!button) return;
    if (button.hasAttribute("data-rename")) {
      openRename(button.dataset.rename, button.dataset.title, button);
    } else if (button.hasAttribute("data-delete")) {
      deleteConversation(button.dataset.delete);
    } else if (button.hasAttribute("data-rename-current")) {
      const title = document.getElementById("chat-title").textContent;
      openRename(currentId(), title, button);
    } else if (button.hasAttribute("data-delete-current")) {
      deleteConversation(currentId());
    }
  });

  // The drawer (phones) ----------------------------------------------------------------

  const sidebar = document.getElementById("sidebar");
  const openButton = document.getElementById("open-drawer");
  const closeButton = document.getElementById("close-drawer");
  const backdrop = document.getElementById("drawer-backdrop");
  if (!sidebar || !openButton) return;

  function setDrawer(open) {
    document.body.classList.toggle("drawer-open", open);
    openButton.setAttribute("aria-expanded", open ? "true" : "false");
    backdrop.hidden = !open;
    if (open) {
      const first = sidebar.querySelector("a, button, input");
      if (first) first.focus();
    } else {
      openButton.focus();
    }
  }

  openButton.addEventListener("click", () => setDrawer(true));
  closeButton.addEventListener("click", () => setDrawer(false));
  backdrop.addEventListener("click", () => setDrawer(false));
  document.addEventListener("keydown", function (event) {
    if (event.key === "Escape" && document.body.classList.contains("drawer-open")) {
      setDrawer(false);
    }
  });
})();
