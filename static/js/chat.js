// Chat page: send a message to /api/chat and show the answer as it streams in,
// rendered as Markdown; stop it, copy it, ask again, edit the last question; and
// quote the next turn while it is typed.
(function () {
  "use strict";
  const chat = document.getElementById("chat");
  const form = document.getElementById("composer");
  if (!chat || !form) return;
  const strings = JSON.parse(document.getElementById("chat-i18n").textContent);
  const list = document.getElementById("messages");
  const textarea = document.getElementById("message");
  const sendButton = document.getElementById("send");
  const stopButton = document.getElementById("stop");
  const errorBox = document.getElementById("chat-error");
  const balance = document.getElementById("balance");
  const lowBalance = document.getElementById("low-balance");
  const modelSelect = document.getElementById("model");
  const counter = document.getElementById("message-counter");
  const estimateBox = document.getElementById("estimate");
  const total = document.getElementById("conversation-points");
  const csrfToken = form.querySelector("input[name=csrfmiddlewaretoken]").value;
  const maxChars = Number(chat.dataset.maxChars);
  const numberFormat = new Intl.NumberFormat();
  // The counter shows from this share of the limit on.
  const COUNTER_FROM = 0.8;
  const ESTIMATE_DELAY_MS = 300;
  // After Stop, how long to wait for the server to settle the turn.
  const OUTCOME_TRIES = 40;
  const OUTCOME_DELAY_MS = 250;

  // The turn in progress: {controller, key, stopped}; null when idle.
  let turn = null;

  function fill(template, values) {
    return template.replace(/\{(\w+)\}/g, (match, name) =>
      name in values ? values[name] : match
    );
  }

  function grouped(number) {
    return numberFormat.format(number);
  }

  // Characters as the server counts them (code points, not UTF-16 units).
  function characters(text) {
    return Array.from(text).length;
  }

  function newTurnKey() {
    const bytes = new Uint8Array(16);
    crypto.getRandomValues(bytes);
    return Array.from(bytes, (byte) => byte.toString(16).padStart(2, "0")).join("");
  }

  function sleep(milliseconds) {
    return new Promise((resolve) => window.setTimeout(resolve, milliseconds));
  }

  function nearBottom() {
    return list.scrollHeight - list.scrollTop - list.clientHeight < 80;
  }

  function scrollToEnd() {
    list.scrollTop = list.scrollHeight;
  }

  // Messages -----------------------------------------------------------------

  function renderAnswer(item, text) {
    item.eoraSource = text;
    const content = item.querySelector(".content");
    if (window.EoraMarkdown) window.EoraMarkdown.render(content, text);
    else content.textContent = text;
  }

  function actionButton(action, label, description) {
    const button = document.createElement("button");
    button.type = "button";
    button.className = "link";
    button.dataset.action = action;
    button.textContent = label;
    button.setAttribute("aria-label", description);
    return button;
  }

  function actionsOf(item) {
    let actions = item.querySelector(".actions");
    if (!actions) {
      actions = document.createElement("div");
      actions.className = "actions";
      item.appendChild(actions);
    }
    return actions;
  }

  function addCopyAction(item) {
    if (item.querySelector("[data-action=copy]")) return;
    actionsOf(item).prepend(actionButton("copy", strings.copy, strings.copyAnswer));
  }

  // Regenerate goes on the last answer, Edit on the last question.
  function refreshActions() {
    for (const button of list.querySelectorAll(
      "[data-action=regenerate], [data-action=edit]"
    )) {
      button.remove();
    }
    const questions = list.querySelectorAll(".bubble.user");
    const question = questions[questions.length - 1];
    if (!question) return;
    const last = list.querySelector(".bubble:last-child");
    if (last && last.classList.contains("assistant")) {
      actionsOf(last).appendChild(
        actionButton("regenerate", strings.regenerate, strings.regenerateLabel)
      );
    }
    actionsOf(question).appendChild(
      actionButton("edit", strings.edit, strings.editLabel)
    );
  }

  function lastQuestion() {
    const questions = list.querySelectorAll(".bubble.user .content");
    return questions.length ? questions[questions.length - 1].textContent : "";
  }

  function bubble(role, text) {
    const empty = document.getElementById("empty-chat");
    if (empty) empty.remove();
    const item = document.createElement("li");
    item.className = "bubble " + role;
    const content = document.createElement("div");
    content.className = "content";
    item.appendChild(content);
    list.appendChild(item);
    if (role === "assistant") {
      content.dataset.markdown = "";
      renderAnswer(item, text);
    } else {
      content.textContent = text;
    }
    scrollToEnd();
    return item;
  }

  function meta(item, text, extraClass) {
    const line = document.createElement("div");
    line.className = "meta" + (extraClass ? " " + extraClass : "");
    line.textContent = text;
    const actions = item.querySelector(".actions");
    item.insertBefore(line, actions);
    return line;
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

  // Header and totals ----------------------------------------------------------

  function showBalance(remaining) {
    if (balance) {
      balance.textContent = grouped(remaining);
      balance.dataset.balance = remaining;
    }
    if (lowBalance) {
      lowBalance.hidden = remaining >= Number(lowBalance.dataset.threshold);
    }
  }

  function addToTotal(points) {
    if (!total) return;
    const sum = Number(total.dataset.points || 0) + points;
    total.dataset.points = sum;
    total.textContent = fill(strings.conversationPoints, { points: grouped(sum) });
    total.hidden = false;
  }

  function becomeConversation(sessionId, question) {
    const url = chat.dataset.conversationUrl.replace(/new\/$/, sessionId + "/");
    const title = document.getElementById("chat-title");
    title.textContent = Array.from(question).slice(0, 60).join("");
    title.dataset.conversationTitle = sessionId;
    document.title = title.textContent + " · EORA points";
    const sidebar = document.getElementById("sidebar-list");
    if (sidebar) {
      const first = sidebar.querySelector(".group-label");
      let group = first && first.nextElementSibling;
      if (!first || first.textContent !== sidebar.dataset.todayLabel) {
        const label = document.createElement("h2");
        label.className = "group-label";
        label.textContent = sidebar.dataset.todayLabel;
        group = document.createElement("ul");
        sidebar.prepend(label, group);
      }
      const item = document.createElement("li");
      item.dataset.conversationItem = sessionId;
      const link = document.createElement("a");
      link.href = url;
      link.className = "active";
      link.setAttribute("aria-current", "page");
      link.dataset.conversationTitle = sessionId;
      link.textContent = title.textContent;
      item.appendChild(link);
      group.prepend(item);
    }
    for (const control of chat.querySelectorAll(
      "[data-rename-current], [data-delete-current]"
    )) {
      control.hidden = false;
    }
    chat.dataset.sessionId = sessionId;
    form.querySelector("input[name=session_id]").value = sessionId;
    history.replaceState(null, "", url);
  }

  // Show the answer's model, tokens and points, and follow the balance.
  function finish(item, result, question) {
    const info = result.points_info;
    item.classList.add(result.status);
    item.dataset.model = result.model;
    const line = meta(
      item,
      fill(strings.meta, {
        model: result.model,
        prompt: info.token_usage.prompt_tokens,
        completion: info.token_usage.completion_tokens,
        points: grouped(info.deducted),
      })
    );
    if (info.list_cost && info.list_cost !== info.deducted) {
      line.append(" ");
      const list = document.createElement("s");
      list.className = "list-cost";
      list.title = strings.listPrice;
      list.textContent = fill(strings.listCost, { points: grouped(info.list_cost) });
      line.appendChild(list);
    }
    if (result.status === "partial") {
      line.append(" · ");
      const stopped = document.createElement("span");
      stopped.className = "stopped";
      stopped.textContent = strings.stopped;
      line.appendChild(stopped);
    }
    addCopyAction(item);
    showBalance(info.remaining);
    addToTotal(info.deducted);
    if (result.session_id && !chat.dataset.sessionId) {
      becomeConversation(result.session_id, question);
    }
  }

  // Sending ------------------------------------------------------------------------

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

  // Ask how a stopped turn ended: what the server kept is what it charged.
  async function turnOutcome(key) {
    const url = chat.dataset.turnUrl.replace("KEY", key);
    for (let attempt = 0; attempt < OUTCOME_TRIES; attempt += 1) {
      const response = await fetch(url, {
        credentials: "same-origin",
        headers: { Accept: "application/json" },
      });
      const body = await response.json();
      const unsettled =
        body.code === "request_in_progress" ||
        // The request may not have reached the ledger yet.
        (body.code === "turn_not_found" && attempt < 4);
      if (!unsettled) return body;
      await sleep(OUTCOME_DELAY_MS);
    }
    return null;
  }

  function setBusy(busy) {
    const hadFocus = document.activeElement;
    sendButton.hidden = busy;
    stopButton.hidden = !busy;
    stopButton.disabled = false;
    if (busy && hadFocus === sendButton) stopButton.focus();
    list.setAttribute("aria-busy", busy ? "true" : "false");
  }

  async function settleStopped(answer, question, userItem) {
    let outcome = null;
    try {
      outcome = await turnOutcome(turn.key);
    } catch (error) {
      showError(strings.network, false);
      return;
    }
    if (outcome && outcome.success) {
      const item = answer || bubble("assistant", "");
      // The server's text is what it counted: show exactly what was charged.
      renderAnswer(item, outcome.response);
      finish(item, outcome, question);
      return;
    }
    if (answer) answer.remove();
    meta(userItem, strings.stoppedUncharged, "stopped-note");
  }

  async function send(message) {
    if (turn) return;
    turn = { controller: new AbortController(), key: newTurnKey(), stopped: false };
    errorBox.hidden = true;
    setBusy(true);
    const userItem = bubble("user", message);
    textarea.value = "";
    updateCounter();
    clearEstimate();
    const model = modelSelect ? modelSelect.value : undefined;
    let answer = null;
    let text = "";
    let frame = 0;
    const paint = () => {
      frame = 0;
      const follow = nearBottom();
      renderAnswer(answer, text);
      if (follow) scrollToEnd();
    };
    try {
      const response = await fetch(chat.dataset.apiUrl, {
        method: "POST",
        credentials: "same-origin",
        signal: turn.controller.signal,
        headers: {
          "Content-Type": "application/json",
          Accept: "text/event-stream",
          "X-CSRFToken": csrfToken,
          "Idempotency-Key": turn.key,
        },
        body: JSON.stringify({
          session_id: chat.dataset.sessionId || null,
          message: message,
          model: model,
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
      answer.dataset.model = model || "";
      await readEvents(response, function (name, data) {
        if (name === "delta") {
          text += data.text;
          if (!frame) frame = window.requestAnimationFrame(paint);
        } else if (name === "done") {
          if (frame) window.cancelAnimationFrame(frame);
          renderAnswer(answer, data.response);
          finish(answer, data, message);
        } else if (name === "error") {
          answer.remove();
          answer = null;
          userItem.classList.add("failed");
          meta(userItem, strings.failed, "error");
          showError(data.error, false);
        }
      });
    } catch (error) {
      if (frame) window.cancelAnimationFrame(frame);
      if (turn.stopped) await settleStopped(answer, message, userItem);
      else showError(strings.network, false);
    } finally {
      turn = null;
      setBusy(false);
      refreshActions();
      scrollToEnd();
      textarea.focus();
      if (textarea.value.trim()) scheduleEstimate();
    }
  }

  function submitMessage() {
    if (turn) return;
    const message = textarea.value.trim();
    if (!message) return;
    if (characters(message) > maxChars) {
      showError(fill(strings.tooLong, { limit: grouped(maxChars) }), false);
      return;
    }
    send(message);
  }

  form.addEventListener("submit", function (event) {
    event.preventDefault();
    submitMessage();
  });

  // Enter sends, Shift+Enter starts a new line; nothing is sent while an answer
  // streams, nor while an input method is composing (Korean syllables).
  textarea.addEventListener("keydown", function (event) {
    if (event.key !== "Enter" || event.shiftKey) return;
    if (event.isComposing || event.keyCode === 229) return;
    event.preventDefault();
    if (!turn) submitMessage();
  });

  stopButton.addEventListener("click", function () {
    if (!turn || turn.stopped) return;
    turn.stopped = true;
    stopButton.disabled = true;
    turn.controller.abort();
  });

  list.addEventListener("click", function (event) {
    const button = event.target.closest("button[data-action]");
    if (!button) return;
    const item = button.closest(".bubble");
    if (button.dataset.action === "copy") {
      window.Eora.copyFrom(button, item.eoraSource || "");
    } else if (button.dataset.action === "regenerate") {
      if (!turn) send(lastQuestion());
    } else if (button.dataset.action === "edit") {
      const question = lastQuestion();
      textarea.value = question;
      textarea.focus();
      textarea.setSelectionRange(question.length, question.length);
      updateCounter();
      scheduleEstimate();
    }
  });

  // Length and cost before sending -------------------------------------------------

  function updateCounter() {
    const count = characters(textarea.value.trim());
    const over = count > maxChars;
    counter.hidden = count < maxChars * COUNTER_FROM;
    counter.textContent = fill(strings.counter, {
      count: grouped(count),
      limit: grouped(maxChars),
    });
    counter.classList.toggle("over", over);
    textarea.setAttribute("aria-invalid", over ? "true" : "false");
    sendButton.disabled = over;
    if (over) {
      estimateBox.textContent = fill(strings.tooLong, { limit: grouped(maxChars) });
      estimateBox.className = "estimate warning";
    }
  }

  let estimateTimer = 0;
  let estimateRequest = null;

  function clearEstimate() {
    window.clearTimeout(estimateTimer);
    if (estimateRequest) estimateRequest.abort();
    estimateRequest = null;
    estimateBox.textContent = "";
    estimateBox.className = "estimate";
  }

  function scheduleEstimate() {
    window.clearTimeout(estimateTimer);
    estimateTimer = window.setTimeout(estimate, ESTIMATE_DELAY_MS);
  }

  function showEstimate(quote) {
    estimateBox.className = "estimate";
    const discounted = quote.discount_bps > 0;
    estimateBox.textContent = fill(
      discounted ? strings.estimateDiscounted : strings.estimate,
      {
        tokens: grouped(quote.prompt_tokens),
        minimum: grouped(quote.minimum_points),
        maximum: grouped(quote.maximum_points),
        listMinimum: grouped(quote.list_minimum_points),
        listMaximum: grouped(quote.list_maximum_points),
      }
    );
    estimateBox.dataset.promptTokens = quote.prompt_tokens;
    estimateBox.dataset.minimumPoints = quote.minimum_points;
    estimateBox.dataset.maximumPoints = quote.maximum_points;
    if (!quote.affordable) {
      const warning = document.createElement("strong");
      warning.className = "warning";
      warning.textContent =
        " " + fill(strings.unaffordable, { available: grouped(quote.available) });
      estimateBox.appendChild(warning);
    }
  }

  async function estimate() {
    const message = textarea.value.trim();
    if (!message) {
      clearEstimate();
      return;
    }
    if (characters(message) > maxChars) return;
    if (estimateRequest) estimateRequest.abort();
    const request = new AbortController();
    estimateRequest = request;
    try {
      const response = await fetch(chat.dataset.estimateUrl, {
        method: "POST",
        credentials: "same-origin",
        signal: request.signal,
        headers: {
          "Content-Type": "application/json",
          Accept: "application/json",
          "X-CSRFToken": csrfToken,
        },
        body: JSON.stringify({
          session_id: chat.dataset.sessionId || null,
          message: message,
          model: modelSelect ? modelSelect.value : undefined,
        }),
      });
      const body = await response.json();
      if (estimateRequest !== request) return;
      if (body.success) {
        showEstimate(body);
      } else {
        estimateBox.className = "estimate warning";
        estimateBox.textContent = body.error;
      }
    } catch (error) {
      if (error.name !== "AbortError" && estimateRequest === request) clearEstimate();
    }
  }

  textarea.addEventListener("input", function () {
    updateCounter();
    scheduleEstimate();
  });
  if (modelSelect) modelSelect.addEventListener("change", scheduleEstimate);

  // The page as it opens -------------------------------------------------------------

  for (const item of list.querySelectorAll(".bubble.assistant")) {
    renderAnswer(item, item.querySelector(".content").textContent);
    if (!item.classList.contains("failed")) addCopyAction(item);
  }
  refreshActions();
  scrollToEnd();
  // Late layout (fonts) can still grow the list: settle at its end once more.
  window.addEventListener("load", scrollToEnd);
  if (!chat.dataset.sessionId) textarea.focus();
})();
