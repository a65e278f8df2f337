// Answers as Markdown: marked parses, DOMPurify keeps only harmless HTML, and
// highlight.js colours code blocks. A model's or a person's text never runs
// script or brings styles: HTML written in the text is shown as text, what marked
// makes is sanitized all the same, and the page's Content-Security-Policy would
// refuse inline script and style anyway.
(function () {
  "use strict";
  const strings = JSON.parse(document.getElementById("chat-i18n").textContent);
  const ALLOWED_TAGS = [
    "a", "blockquote", "br", "code", "del", "em", "h1", "h2", "h3", "h4", "h5",
    "h6", "hr", "li", "ol", "p", "pre", "s", "strong", "sub", "sup", "table",
    "tbody", "td", "th", "thead", "tr", "ul",
  ];
  const SANITIZE = {
    ALLOWED_TAGS: ALLOWED_TAGS,
    ALLOWED_ATTR: ["href", "title", "align", "start", "class"],
    ALLOW_DATA_ATTR: false,
  };
  const CODE_LANGUAGE = /^language-[\w+#.-]{1,32}$/;

  function escapeHtml(text) {
    return String(text)
      .replace(/&/g, "&amp;")
      .replace(/</g, "&lt;")
      .replace(/>/g, "&gt;")
      .replace(/"/g, "&quot;");
  }

  // Only a code block's language may set a class: anything else could dress
  // text up as the page's own controls.
  DOMPurify.addHook("uponSanitizeAttribute", function (node, data) {
    if (data.attrName === "class") {
      data.keepAttr = node.nodeName === "CODE" && CODE_LANGUAGE.test(data.attrValue);
    }
  });
  DOMPurify.addHook("afterSanitizeAttributes", function (node) {
    if (node.nodeName === "A" && node.hasAttribute("href")) {
      node.setAttribute("target", "_blank");
      node.setAttribute("rel", "noopener noreferrer nofollow");
    }
  });

  const parser = new marked.Marked({
    gfm: true,
    breaks: true,
    renderer: {
      // HTML in the text is text. (Chromium reports even the handlers and styles
      // of markup it only parses as CSP violations, so it never reaches a parser.)
      html(token) {
        const text = escapeHtml(token.text);
        return token.block ? "<p>" + text + "</p>" : text;
      },
      // The page loads no images from elsewhere (img-src 'self'): show a link.
      image(token) {
        const label = escapeHtml(token.text || token.href);
        return '<a href="' + escapeHtml(token.href) + '">' + label + "</a>";
      },
      // Task lists without form controls.
      checkbox(token) {
        return token.checked ? "☑ " : "☐ ";
      },
    },
  });
  hljs.configure({ ignoreUnescapedHTML: true });

  function addCodeTools(pre) {
    const code = pre.querySelector("code");
    const wrapper = document.createElement("div");
    wrapper.className = "code-block";
    const bar = document.createElement("div");
    bar.className = "code-bar";
    const language = (code.className.match(/language-([\w+#.-]+)/) || [])[1];
    const name = document.createElement("span");
    name.textContent = language || "";
    const copy = document.createElement("button");
    copy.type = "button";
    copy.className = "copy-code link";
    copy.textContent = strings.copyCode;
    copy.addEventListener("click", () => window.Eora.copyFrom(copy, code.textContent));
    bar.append(name, copy);
    pre.replaceWith(wrapper);
    wrapper.append(bar, pre);
  }

  // Render `text` as Markdown into `element`, replacing what it held.
  function render(element, text) {
    const html = parser.parse(text, { async: false });
    element.innerHTML = DOMPurify.sanitize(html, SANITIZE);
    element.classList.add("markdown");
    for (const code of element.querySelectorAll("pre > code")) {
      hljs.highlightElement(code);
      addCodeTools(code.parentElement);
    }
  }

  window.EoraMarkdown = { render: render };
})();
