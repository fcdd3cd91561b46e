// The receipt's "Imprimer" button: the browser's own print dialog (the page's @media print
// leaves the receipt alone on the sheet). Without scripts, the browser's menu prints it too.
document.querySelectorAll("[data-print]").forEach((button) => {
  button.hidden = false;
  button.addEventListener("click", () => window.print());
});
