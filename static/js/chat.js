// Chat page: send a message to /api/chat and show the answer as it streams in.
(function () {
  "use strict";
  const chat = document.getElementById("chat");
  const form = document.getElementById("composer");
  if (!chat || !form) return;
  const strings = JSON.parse(document.getElementById("chat-i18n").textContent);
  const list = document.getElementById("messages");
  const textarea = document.getElementById("message");
  const sendButton = document.getElementById("send");
  const errorBox = document.getElementById("chat-error");
  const balance = document.getElementById("balance");
  const csrfToken = form.querySelector("input[name=csrfmiddlewaretoken]").value;
  const numberFormat = new Intl.NumberFormat();

  function bubble(role, text) {
    const empty = document.getElementById("empty-chat");
    if (empty) empty.remove();
    const item = document.createElement("li");
    item.className = "bubble " + role;
    const content = document.createElement("div");
    content.className = "content";
    content.textContent = text;
    item.appendChild(content);
    list.appendChild(item);
    item.scrollIntoView({ block: "end" });
    return item;
  }

  function meta(item, text, extraClass) {
    const line = document.createElement("div");
    line.className = "meta" + (extraClass ? " " + extraClass : "");
    line.textContent = text;
    item.appendChild(line);
  }

  function showError(message, withPointsLink) {
    errorBox.textContent = message + " ";
    if (withPointsLink) {
      const link = document.createElement("a");
      link.href = chat.dataset.pointsUrl;
      link.textContent = strings.myPoints;
      errorBox.appendChild(link);
    }
    errorBox.hidden = false;
  }

  function finish(item, result, question) {
    const info = result.points_info;
    let text = strings.meta
      .replace("{prompt}", info.token_usage.prompt_tokens)
      .replace("{completion}", info.token_usage.completion_tokens)
      .replace("{points}", numberFormat.format(info.deducted));
    if (result.status === "partial") text += " · " + strings.partial;
    meta(item, text);
    if (balance) {
      balance.textContent = numberFormat.format(info.remaining);
      balance.dataset.balance = info.remaining;
    }
    if (result.session_id && !chat.dataset.sessionId) {
      const url = chat.dataset.conversationUrl.replace(/new\/$/, result.session_id + "/");
      const title = document.getElementById("chat-title");
      title.textContent = question.slice(0, 60);
      document.title = title.textContent + " · EORA points";
      const sidebar = document.getElementById("sidebar-list");
      if (sidebar) {
        const item = document.createElement("li");
        const link = document.createElement("a");
        link.href = url;
        link.className = "active";
        link.textContent = title.textContent;
        item.appendChild(link);
        sidebar.prepend(item);
      }
      chat.dataset.sessionId = result.session_id;
      form.querySelector("input[name=session_id]").value = result.session_id;
      history.replaceState(null, "", url);
    }
  }

  async function readEvents(response, onEvent) {
    const reader = response.body.getReader();
    const decoder = new TextDecoder();
    let buffer = "";
    for (;;) {
      const { value, done } = await reader.read();
      if (done) break;
      buffer += decoder.decode(value, { stream: true });
      let end;
      while ((end = buffer.indexOf("\n\n")) !== -1) {
        const block = buffer.slice(0, end);
        buffer = buffer.slice(end + 2);
        let name = "message";
        let data = "";
        for (const line of block.split("\n")) {
          if (line.startsWith("event: ")) name = line.slice(7);
          else if (line.startsWith("data: ")) data += line.slice(6);
        }
        onEvent(name, JSON.parse(data));
      }
    }
  }

  form.addEventListener("submit", async function (event) {
    event.preventDefault();
    const message = textarea.value.trim();
    if (!message) return;
    errorBox.hidden = true;
    sendButton.disabled = true;
    const userItem = bubble("user", message);
    textarea.value = "";
    const modelSelect = form.querySelector("select[name=model]");
    let answer = null;
    try {
      const response = await fetch(chat.dataset.apiUrl, {
        method: "POST",
        credentials: "same-origin",
        headers: {
          "Content-Type": "application/json",
          Accept: "text/event-stream",
          "X-CSRFToken": csrfToken,
        },
        body: JSON.stringify({
          session_id: chat.dataset.sessionId || null,
          message: message,
          model: modelSelect ? modelSelect.value : undefined,
          stream: true,
        }),
      });
      if (!response.ok) {
        const body = await response.json();
        userItem.classList.add("failed");
        showError(body.error, response.status === 402);
        if (response.status !== 402) meta(userItem, strings.failed, "error");
        else textarea.value = message;
        return;
      }
      answer = bubble("assistant", "");
      const content = answer.querySelector(".content");
      await readEvents(response, function (name, data) {
        if (name === "delta") {
          content.textContent += data.text;
          answer.scrollIntoView({ block: "end" });
        } else if (name === "done") {
          finish(answer, data, message);
        } else if (name === "error") {
          answer.remove();
          userItem.classList.add("failed");
          meta(userItem, strings.failed, "error");
          showError(data.error, false);
        }
      });
    } catch (error) {
      showError(strings.network, false);
    } finally {
      sendButton.disabled = false;
      textarea.focus();
    }
  });

  textarea.addEventListener("keydown", function (event) {
    if (event.key === "Enter" && !event.shiftKey && !event.isComposing) {
      event.preventDefault();
      form.requestSubmit();
    }
  });
})();
