// Building the page from data without innerHTML: text is always text, so nothing a meter
// or a payment carries can run as markup.
export function h(tag, attrs = {}, ...children) {
  const el = document.createElement(tag);
  for (const [name, value] of Object.entries(attrs)) {
    if (value === false || value == null) continue;
    if (name.startsWith("on")) el.addEventListener(name.slice(2), value);
    else if (name === "class") el.className = value;
    else if (name === "dataset") Object.assign(el.dataset, value);
    else el.setAttribute(name, value === true ? "" : String(value));
  }
  for (const child of children.flat()) {
    if (child == null || child === false) continue;
    el.append(child instanceof Node ? child : String(child));
  }
  return el;
}

export function field(label, input) {
  const id = input.id || `f-${Math.random().toString(36).slice(2, 9)}`;
  input.id = id;
  return h("div", { class: "field" }, h("label", { for: id }, label), input);
}

// Money is integer cents everywhere; only the page turns it into shillings.
export function kes(cents) {
  if (cents == null) return "—";
  const sign = cents < 0 ? "-" : "";
  const abs = Math.abs(cents);
  const whole = Math.floor(abs / 100).toLocaleString("en-KE");
  return `${sign}KES ${whole}.${String(abs % 100).padStart(2, "0")}`;
}

export function when(ms) {
  if (!ms) return "—";
  return new Date(ms).toLocaleString("en-KE", { timeZone: "Africa/Nairobi" });
}
