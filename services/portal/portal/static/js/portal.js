/* KKMP portal: the little JavaScript the pages use. Everything works without it; this only helps. */
(function () {
  "use strict";
  // A form marked data-once disables its submit button after the first submit, so an impatient double
  // tap sends one request. (The server is the real guard: stock forms carry an Idempotency-Key.)
  document.addEventListener("submit", function (event) {
    var form = event.target;
    if (!form.hasAttribute("data-once")) return;
    if (form.dataset.sent === "1") { event.preventDefault(); return; }
    form.dataset.sent = "1";
    var button = form.querySelector("button[type=submit]");
    if (button) {
      button.disabled = true;
      button.setAttribute("aria-busy", "true");
      button.dataset.text = button.textContent;
      button.textContent = "Menyimpan…";
    }
    // If the page is restored from the back/forward cache, allow sending again.
    window.addEventListener("pageshow", function () {
      form.dataset.sent = "";
      if (button) { button.disabled = false; button.removeAttribute("aria-busy"); button.textContent = button.dataset.text; }
    }, { once: true });
  });
})();
