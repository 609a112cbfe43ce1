/* Catalog and compare pages.
 * Catalog: count the ticked jobs, enable "Compare selected" from two, and open the compare page as
 *   catalog/compare/?jobs=1,2 (a short permalink); "select all" ticks every job on the page.
 * Compare: "only differing settings" hides the config rows on which every job agrees.
 */
(function () {
  "use strict";

  function catalogPage(form) {
    var button = document.getElementById("compare-button");
    var count = document.getElementById("compare-count");
    var all = document.getElementById("select-all");
    var boxes = function () { return Array.prototype.slice.call(form.querySelectorAll("input.compare-check")); };

    function update() {
      var ticked = boxes().filter(function (b) { return b.checked; });
      if (button) button.disabled = ticked.length < 2;
      if (count) {
        count.textContent = ticked.length < 2
          ? "Select two or more jobs to compare them."
          : ticked.length + " jobs selected.";
      }
      if (all) {
        all.checked = ticked.length > 0 && ticked.length === boxes().length;
        all.indeterminate = ticked.length > 0 && ticked.length < boxes().length;
      }
    }

    form.addEventListener("change", function (event) {
      if (event.target === all) boxes().forEach(function (b) { b.checked = all.checked; });
      update();
    });
    form.addEventListener("submit", function (event) {
      var ids = boxes().filter(function (b) { return b.checked; }).map(function (b) { return b.value; });
      if (ids.length < 2) { event.preventDefault(); return; }
      event.preventDefault();
      window.location.href = form.getAttribute("action") + "?jobs=" + ids.join(",");
    });
    update();
  }

  function comparePage(toggle) {
    var rows = document.querySelectorAll("#compare-diff tbody tr.same-row");
    function apply() { rows.forEach(function (row) { row.hidden = toggle.checked; }); }
    toggle.addEventListener("change", apply);
    apply();
  }

  document.addEventListener("DOMContentLoaded", function () {
    var form = document.getElementById("compare-form");
    if (form) catalogPage(form);
    var toggle = document.getElementById("diff-only");
    if (toggle) comparePage(toggle);
  });
})();
