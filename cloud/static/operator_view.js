// The operator's desk: the fleet table a page at a time (the store's cursor query, so 10,000
// meters cost one page each), pending and failed STK requests (live), unmatched paybill payments and
// routing them, and registering a customer with a meter.
import { enc, get, post } from "./api.js";
import { field, h, kes, when } from "./dom.js";

const PAGE = 50;
const COLUMNS = [
  ["meter_no", "meter_no"], ["user_id", "customer"], ["current_balance_cents", "balance"],
  ["state", "status"], ["last_seen", "last_seen"], ["alerts", "alerts"], ["firmware", "firmware"],
];

function row(meter) {
  const status = meter.status || {};
  const offline = (meter.alerts || {}).connection_lost === true || status.state === "offline";
  return {
    meter_no: meter.meter_no, user_id: meter.user_id || "",
    current_balance_cents: meter.current_balance_cents ?? null,
    state: status.state == null && !offline ? "" : offline ? "offline" : "online",
    last_seen: status.last_seen || 0,
    alerts: Object.entries(meter.alerts || {}).filter(([k, on]) => on && k !== "connection_lost").map(([k]) => k),
    firmware: status.firmware || "",
  };
}

export class OperatorView {
  constructor(ctx) {
    this.ctx = ctx;
    this.cursors = [null]; // the cursor of each page seen, for going back to the first
    this.rows = [];
    this.sortKey = "meter_no";
    this.sortUp = true;
    this.prefix = "";
    this.filterTimer = null;
    this.stkTimer = null;
    this.refreshTimer = null;
    this.root = h("section", { class: "operator" });
  }

  async mount(container) {
    const { t } = this.ctx;
    this.tableBox = h("div", { class: "scroll" });
    this.pager = h("div", { class: "pager" });
    this.stkBoxes = { pending: h("ul", { id: "stk-pending" }), failed: h("ul", { id: "stk-failed" }) };
    this.unmatchedBox = h("div", { id: "unmatched" });
    // The store finds the prefix (10,000 meters are never all in the page); typing settles first.
    const filter = h("input", { id: "fleet-filter", type: "search", oninput: (e) => {
      clearTimeout(this.filterTimer);
      this.filterTimer = setTimeout(() => { this.prefix = e.target.value; this.cursors = [null]; this.loadPage(); }, 200);
    } });
    this.root.replaceChildren(
      h("h2", {}, t("fleet")), field(t("filter"), filter), this.tableBox, this.pager,
      h("h3", {}, t("stk_pending_list")), this.stkBoxes.pending,
      h("h3", {}, t("stk_failed_list")), this.stkBoxes.failed,
      h("h3", {}, t("unmatched")), this.unmatchedBox,
      this.registerForm());
    container.replaceChildren(this.root);
    await Promise.all([this.loadPage(), this.loadUnmatched(), this.loadStk()]);
  }

  async loadPage() {
    const cursor = this.cursors[this.cursors.length - 1];
    const query = `limit=${PAGE}` + (cursor ? `&after=${enc(cursor)}` : "") +
      (this.prefix ? `&prefix=${enc(this.prefix)}` : "");
    const page = await get(`/api/fleet?${query}`);
    this.rows = page.meters.map(row);
    this.next = page.next;
    this.drawTable();
  }

  drawTable() {
    const { t } = this.ctx;
    const shown = [...this.rows];
    const dir = this.sortUp ? 1 : -1;
    shown.sort((a, b) => {
      const x = a[this.sortKey], y = b[this.sortKey];
      return (x > y ? 1 : x < y ? -1 : 0) * dir;
    });
    const head = h("tr", {}, COLUMNS.map(([key, label]) => h("th", {
      scope: "col", "aria-sort": this.sortKey === key ? (this.sortUp ? "ascending" : "descending") : "none",
    }, h("button", { type: "button", class: "link", onclick: () => this.sortBy(key) }, t(label)))));
    const body = shown.map((r) => h("tr", { dataset: { meter: r.meter_no } },
      h("td", {}, h("a", { href: `#/meter/${enc(r.meter_no)}` }, r.meter_no)),
      h("td", {}, r.user_id), h("td", { class: "num" }, kes(r.current_balance_cents)),
      h("td", { class: `state ${r.state === "offline" ? "bad" : "good"}` }, r.state ? t(r.state) : "—"),
      h("td", {}, when(r.last_seen)), h("td", {}, r.alerts.map((a) => t("alert_" + a)).join(", ")),
      h("td", {}, r.firmware)));
    this.tableBox.replaceChildren(h("table", { id: "fleet" }, h("thead", {}, head), h("tbody", {}, body)));
    this.pager.replaceChildren(...[
      this.cursors.length > 1 && h("button", { type: "button",
        onclick: () => { this.cursors = [null]; this.loadPage(); } }, t("first_page")),
      this.next && h("button", { type: "button", id: "next-page",
        onclick: () => { this.cursors.push(this.next); this.loadPage(); } }, t("next_page")),
    ].filter(Boolean));
  }

  sortBy(key) {
    this.sortUp = this.sortKey === key ? !this.sortUp : true;
    this.sortKey = key;
    this.drawTable();
  }

  async loadUnmatched() {
    const { t } = this.ctx;
    const list = await get("/api/payments/unmatched").catch(() => []);
    if (!list.length) { this.unmatchedBox.replaceChildren(h("p", {}, t("no_unmatched"))); return; }
    this.unmatchedBox.replaceChildren(h("ul", {}, list.map((p) => {
      const target = h("input", { type: "text", required: true, autocomplete: "off" });
      const result = h("span", { role: "status" });
      return h("li", { dataset: { receipt: p.receipt } },
        h("span", {}, `${p.receipt} · ${kes(p.amount_cents)} · ${p.bill_ref ?? "—"} · ${p.reason || ""}`),
        h("form", { class: "inline", onsubmit: async (e) => {
          e.preventDefault();
          try {
            const reply = await post(`/api/payments/unmatched/${enc(p.receipt)}/credit`, { meter_no: target.value });
            result.textContent = t("routed", { outcome: reply.outcome });
          } catch (error) { result.textContent = t("error", { message: error.message }); }
        } }, field(t("route_to"), target), h("button", { type: "submit" }, t("route")), result));
    })));
  }

  registerForm() {
    const { t } = this.ctx;
    const name = h("input", { id: "reg-name", required: true, autocomplete: "off" });
    const phone = h("input", { id: "reg-phone", type: "tel", autocomplete: "off" });
    const meterNo = h("input", { id: "reg-meter", required: true, autocomplete: "off" });
    const result = h("p", { id: "reg-result", role: "status" });
    return h("form", { class: "register", onsubmit: async (e) => {
      e.preventDefault();
      try {
        const user = await post("/api/users", { name: name.value, ...(phone.value ? { phone_number: phone.value } : {}) });
        const meter = await post("/api/meters", { meter_no: meterNo.value, user_id: user.user_id });
        result.textContent = t("registered", { key: user.api_key || "—", device: meter.device_key });
        this.loadPage();
      } catch (error) { result.textContent = t("error", { message: error.message }); }
    } }, h("h3", {}, t("register")), field(t("name"), name), field(t("phone"), phone),
    field(t("meter_no"), meterNo), h("button", { type: "submit" }, t("register")), result);
  }

  async loadStk() {
    const { t } = this.ctx;
    for (const [status, box] of Object.entries(this.stkBoxes)) {
      const list = await get(`/api/payments/stk?status=${status}&limit=20`).catch(() => []);
      box.replaceChildren(...(list.length ? list.map((stk) => h("li",
        { dataset: { checkout: stk.checkout_request_id, state: stk.status } },
        `${when(stk.created_at)} · ${stk.meter_no} · ${kes(stk.amount_cents)}` + (stk.reason ? ` · ${stk.reason}` : "")))
        : [h("li", { class: "none" }, t("no_unmatched"))]));
    }
  }

  onEvent(event) {
    // At most one re-read per kind in flight: a fleet's telemetry is a steady stream of
    // events, and the table re-reads its page at most every half second.
    if ((event.kind === "stk" || event.kind === "resync") && !this.stkTimer) {
      this.stkTimer = setTimeout(() => { this.stkTimer = null; this.loadStk(); }, 100);
    }
    const onPage = event.kind === "resync" || this.rows.some((r) => r.meter_no === event.meter_no);
    if (!onPage || this.refreshTimer) return;
    this.refreshTimer = setTimeout(() => { this.refreshTimer = null; this.loadPage(); }, 500);
  }

  onReconnect() {
    this.loadPage();
    this.loadUnmatched();
    this.loadStk();
  }
}
