// Behaviour the console's pages ask for with data- attributes (no inline handlers: the
// Content-Security-Policy runs only this file and nonce'd blocks).
document.addEventListener('submit', (e) => {
  const words = e.target.dataset && e.target.dataset.confirm;
  if (words && !window.confirm(words)) e.preventDefault();
});
document.addEventListener('change', (e) => {
  if (e.target.matches && e.target.matches('[data-autosubmit]')) e.target.form.submit();
});
document.addEventListener('input', (e) => {
  const selector = e.target.dataset && e.target.dataset.clears;
  if (selector) document.querySelectorAll(selector).forEach((box) => { box.checked = false; });
});
