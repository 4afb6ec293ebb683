// Vigil console, Banks page: a file chosen for matching is read here and sent as base64 in the form's
// hidden field (console forms are urlencoded; the service refuses other bodies under /console/).
"use strict";
document.addEventListener("change", function (event) {
  const input = event.target;
  if (!input.matches || !input.matches("input[type=file][data-into]") || !input.files.length) return;
  const into = document.getElementById(input.dataset.into);
  const reader = new FileReader();
  reader.onload = function () { into.value = String(reader.result); };
  reader.readAsDataURL(input.files[0]);
});
