// The card payment of the top-up page: pick a pack, pay with Stripe's Payment
// Element. The order and its PaymentIntent are made by POST /api/points/orders;
// the browser then confirms the payment and Stripe sends it to the return page,
// which records it (as the webhook does).
(() => {
  "use strict";

  const root = document.getElementById("top-up");
  const form = document.getElementById("payment-form");
  if (!root || !form || typeof window.Stripe !== "function") {
    return;
  }
  const csrfToken = document.querySelector("[name=csrfmiddlewaretoken]").value;
  const stripe = window.Stripe(root.dataset.publishableKey, {
    locale: root.dataset.locale,
  });
  const errorBox = document.getElementById("payment-error");
  const orderErrorBox = document.getElementById("order-error");
  const payButton = document.getElementById("pay-button");
  let payment = null;

  function showError(message, box = errorBox) {
    box.textContent = message || "";
    box.hidden = !message;
  }

  async function postJson(url, body) {
    const response = await fetch(url, {
      method: "POST",
      credentials: "same-origin",
      headers: {
        "Content-Type": "application/json",
        Accept: "application/json",
        "X-CSRFToken": csrfToken,
      },
      body: JSON.stringify(body),
    });
    const answer = await response.json().catch(() => ({}));
    if (!response.ok) {
      throw new Error(answer.error || response.statusText);
    }
    return answer;
  }

  function returnUrl(order) {
    const url = new URL(root.dataset.returnUrl, window.location.href);
    url.searchParams.set("order", order.id);
    return url.href;
  }

  function closePayment() {
    if (payment) {
      payment.element.destroy();
    }
    payment = null;
    form.hidden = true;
    showError("");
  }

  async function startOrder(button) {
    closePayment();
    showError("", orderErrorBox);
    button.disabled = true;
    try {
      const created = await postJson(root.dataset.ordersUrl, {
        pack: Number(button.dataset.buyPack),
      });
      const elements = stripe.elements({
        clientSecret: created.client_secret,
        locale: root.dataset.locale,
      });
      const element = elements.create("payment");
      element.mount("#payment-element");
      payment = { order: created.order, elements, element };
      document.getElementById("payment-pack").textContent =
        button.dataset.packLabel;
      form.hidden = false;
      form.scrollIntoView({ behavior: "smooth", block: "nearest" });
    } catch (error) {
      showError(error.message, orderErrorBox);
    } finally {
      button.disabled = false;
    }
  }

  // Stripe.js confirms in the browser. A stand-in of it without confirmPayment
  // (localstripe's, in the tests) makes a card here, and the server confirms.
  async function confirmOnServer(current) {
    const { token, error } = await stripe.createToken(current.element);
    if (error) {
      throw new Error(error.message || String(error));
    }
    const url = `${root.dataset.ordersUrl}/${current.order.id}/confirm`;
    await postJson(url, { payment_method: token.card.id });
    window.location.assign(returnUrl(current.order));
  }

  async function pay(event) {
    event.preventDefault();
    if (!payment) {
      return;
    }
    payButton.disabled = true;
    showError("");
    try {
      if (typeof stripe.confirmPayment === "function") {
        // Returns only on an error: otherwise the browser leaves for the return URL.
        const { error } = await stripe.confirmPayment({
          elements: payment.elements,
          confirmParams: { return_url: returnUrl(payment.order) },
        });
        throw new Error(error.message);
      }
      await confirmOnServer(payment);
    } catch (error) {
      showError(error.message);
      payButton.disabled = false;
    }
  }

  for (const button of root.querySelectorAll("[data-buy-pack]")) {
    button.addEventListener("click", () => startOrder(button));
  }
  form.addEventListener("submit", pay);
  document.getElementById("cancel-payment").addEventListener("click", closePayment);
})();
