// One meter as its owner (or an operator) sees it: balance, days left, power and why,
// alerts, consumption, payments, and paying with M-Pesa. It re-reads the API whenever the
// live feed says something changed for this meter, so it only ever shows the cloud's records.
import { ApiError, enc, get, post } from "./api.js";
import { dailyChart, hourlyChart } from "./charts.js";
import { field, h, kes, when } from "./dom.js";

const RECENT_DAYS = 7;

// Days of credit left at the average daily cost of the last week with readings.
export function daysLeft(balanceCents, days) {
  const recent = days.filter((d) => d.cost_cents > 0).slice(-RECENT_DAYS);
  if (balanceCents == null || recent.length === 0) return null;
  const perDay = recent.reduce((sum, d) => sum + d.cost_cents, 0) / recent.length;
  return balanceCents <= 0 ? 0 : Math.floor(balanceCents / perDay);
}

function relayText(t, status) {
  if (!status || status.load_connected == null) return [t("relay_unknown"), ""];
  const on = status.load_connected;
  const reason = status.reason ? t("reason_" + status.reason) : "";
  return [on ? t("relay_on") : t("relay_off"), reason];
}

export class MeterView {
  constructor(ctx, meterNo) {
    this.ctx = ctx;
    this.meterNo = meterNo;
    this.root = h("section", { class: "meter", "aria-labelledby": "meter-title" });
    this.stk = null; // the STK push started from this page, newest
    this.refreshTimer = null;
    this.receipts = new Map(); // checkout request id -> M-Pesa receipt
  }

  async mount(container) {
    container.replaceChildren(this.root);
    await this.load();
  }

  async load() {
    const { t } = this.ctx;
    const no = enc(this.meterNo);
    let meter;
    try {
      meter = await get(`/api/meters/${no}`);
    } catch (error) {
      const text = error.status === 403 ? t("not_yours")
        : error.status === 404 ? t("not_found") : t("error", { message: error.message });
      this.form = null;
      this.root.replaceChildren(h("p", { class: "error", role: "alert" }, text));
      return;
    }
    const [days, payments] = await Promise.all([
      get(`/api/meters/${no}/consumption`).catch(() => []),
      get(`/api/transactions/meter/${no}?limit=20`).catch(() => []),
    ]);
    this.meter = meter;
    // the STK view names the transaction; the customer knows the M-Pesa receipt
    for (const p of payments) if (p.checkout_request_id) this.receipts.set(p.checkout_request_id, p.mpesa_receipt);
    this.render(meter, days, payments);
    if (this.stk) this.showStk(this.stk);
  }

  render(meter, days, payments) {
    const { t } = this.ctx;
    const status = meter.status || {};
    const [relay, why] = relayText(t, status);
    const left = daysLeft(meter.current_balance_cents, days);
    const offline = (meter.alerts || {}).connection_lost || status.state === "offline";
    const alerts = Object.entries(meter.alerts || {}).filter(([, on]) => on).map(([name]) => name);
    const latest = [...days].reverse().find((d) => Object.keys(d.readings || {}).length);
    const summary = h("div", { class: "cards" },
      h("div", { class: "card balance" }, h("span", { class: "label" }, t("balance")),
        h("strong", { id: "balance", class: "big" }, kes(meter.current_balance_cents))),
      h("div", { class: "card" }, h("span", { class: "label" }, t("days_left")),
        h("strong", { id: "days-left" },
          left == null ? t("days_unknown") : t("days_left_value", { n: left }))),
      h("div", { class: `card relay ${status.load_connected ? "on" : "off"}` },
        h("span", { class: "label" }, t("relay")),
        h("strong", { id: "relay" }, relay),
        why && h("span", { id: "relay-why", class: "why" }, `${t("why")}: ${why}`)),
      h("div", { class: "card" }, h("span", { class: "label" }, t("last_seen")),
        h("strong", { id: "connection", class: offline ? "bad" : "good" },
          offline ? t("offline") : t("online")),
        h("span", { class: "why" }, when(status.last_seen))));
    const alertList = h("section", { class: "alerts", "aria-label": t("alerts") },
      h("h3", {}, t("alerts")),
      alerts.length ? h("ul", { id: "alerts" }, alerts.map((a) => h("li", { class: "alert" }, t("alert_" + a))))
        : h("p", { id: "alerts" }, t("no_alerts")));
    const details = this.ctx.me.role === "operator" ? this.details(meter) : null;
    const charts = h("section", { class: "charts" });
    if (latest) hourlyChart(t, latest).then((c) => charts.append(c));
    if (days.length) dailyChart(t, days).then((c) => charts.append(c));
    else charts.append(h("p", {}, t("no_history")));
    if (!this.form) {
      // Built once: a live update must not wipe what the customer is typing.
      this.form = this.payForm(meter);
      this.boxes = [h("div"), h("div"), h("div"), h("div")];
      this.root.replaceChildren(
        h("h2", { id: "meter-title" }, t("meter_title", { meter: meter.meter_no })),
        this.boxes[0], this.boxes[1], this.form, this.boxes[2], this.boxes[3]);
    }
    const [summaryBox, alertsBox, chartsBox, paymentsBox] = this.boxes;
    summaryBox.replaceChildren(summary);
    alertsBox.replaceChildren(...[alertList, details].filter(Boolean));
    chartsBox.replaceChildren(charts);
    paymentsBox.replaceChildren(this.paymentsTable(payments));
  }

  // What an operator needs to diagnose a meter, as its last status message reported it.
  details(meter) {
    const { t } = this.ctx;
    const s = meter.status || {};
    const rows = [["customer", meter.user_id], ["firmware", s.firmware], ["wifi", s.wifi_status],
      ["boot", s.boot], ["tariff_version", s.tariff_version], ["recharge_seq", meter.recharge_seq],
      ["last_update", when(meter.last_update)]];
    return h("section", { class: "details" }, h("h3", {}, t("telemetry")),
      h("dl", { id: "meter-details" }, rows.flatMap(([k, v]) => [h("dt", {}, t(k)), h("dd", {}, v ?? "—")])));
  }

  paymentsTable(payments) {
    const { t } = this.ctx;
    if (!payments.length) return h("section", { class: "payments" }, h("h3", {}, t("payments")), h("p", {}, t("no_payments")));
    return h("section", { class: "payments" }, h("h3", {}, t("payments")),
      h("div", { class: "scroll" }, h("table", { id: "payments" },
        h("thead", {}, h("tr", {}, [t("date"), t("amount"), t("receipt"), t("token"), t("status"), t("source")]
          .map((c) => h("th", { scope: "col" }, c)))),
        // the token is the payment's too: typed on the keypad when the meter is offline
        h("tbody", {}, payments.map((p) => h("tr", {},
          h("td", {}, when(p.timestamp)), h("td", { class: "num" }, kes(p.amount_cents)),
          h("td", { class: "receipt" }, p.mpesa_receipt || "—"),
          h("td", { class: "token" }, p.token || "—"), h("td", {}, p.status || "—"),
          h("td", {}, p.source || "—")))))));
  }

  payForm(meter) {
    const { t, me } = this.ctx;
    const amount = h("input", { id: "pay-amount", name: "amount", type: "number", min: "1",
      step: "1", required: true, inputmode: "numeric" });
    const phone = h("input", { id: "pay-phone", name: "phone", type: "tel", required: true,
      autocomplete: "tel", placeholder: "07XXXXXXXX" });
    this.stkLine = h("p", { id: "stk-status", role: "status", "aria-live": "polite" });
    if (this.stk) this.showStk(this.stk);
    const form = h("form", { class: "pay", onsubmit: (e) => { e.preventDefault(); this.pay(amount.value, phone.value); } },
      h("h3", {}, t("pay")), field(t("amount_kes"), amount), field(t("phone"), phone),
      h("button", { type: "submit", id: "pay-submit" }, t("send_prompt")), this.stkLine,
      h("h4", {}, t("paybill_title")),
      h("p", { id: "paybill" }, t("paybill_how", { paybill: me.paybill, meter: meter.meter_no })));
    return form;
  }

  async pay(amount, phone) {
    const { t } = this.ctx;
    const button = this.form.querySelector("button[type=submit]");
    if (button.disabled) return; // a double tap must not ask for a second prompt
    button.disabled = true;
    this.stkLine.textContent = t("stk_pending");
    this.stkLine.className = "pending";
    try {
      this.showStk(await post("/api/payments/stkpush",
        { meter_no: this.meterNo, phone, amount: parseInt(amount, 10) }));
    } catch (error) {
      this.stkLine.textContent = t("error", { message: error.message });
      this.stkLine.className = "bad";
    } finally {
      button.disabled = false;
    }
  }

  showStk(stk) {
    const { t } = this.ctx;
    this.stk = stk;
    const line = this.stkLine;
    line.dataset.checkout = stk.checkout_request_id;
    line.dataset.state = stk.status;
    if (stk.status === "success") {
      line.textContent = t("stk_success", { receipt: this.receipts.get(stk.checkout_request_id) || "" });
      line.className = "good";
    } else if (stk.status === "failed") {
      // the API's reason is English; known codes have their words in both languages
      const key = `stk_code_${stk.result_code}`;
      const reason = t(key) !== key ? t(key) : stk.reason || stk.result_desc || "";
      line.textContent = t("stk_failed", { reason });
      line.className = "bad";
    } else {
      line.textContent = t("stk_pending");
      line.className = "pending";
    }
  }

  async refreshStk() {
    if (!this.stk) return;
    const asked = this.stk.checkout_request_id;
    try {
      const stk = await get(`/api/payments/stk/${enc(asked)}`);
      // a newer push started meanwhile: the old answer must not replace its status
      if (this.stk.checkout_request_id === asked) this.showStk(stk);
    } catch (error) {
      if (!(error instanceof ApiError)) throw error;
    }
  }

  // The live feed's hint: a burst (ack, telemetry, status) becomes one re-read, and a steady
  // stream of events still re-reads (a timer already set is kept, not pushed back).
  onEvent(event) {
    if (event && event.kind !== "resync" && event.meter_no !== this.meterNo) return;
    if (event && event.kind === "payment" && event.checkout_request_id) {
      this.receipts.set(event.checkout_request_id, event.receipt);
    }
    if (event && (event.kind === "stk" || event.kind === "payment")) this.refreshStk();
    if (this.refreshTimer) return;
    this.refreshTimer = setTimeout(() => { this.refreshTimer = null; this.load(); }, 50);
  }

  onReconnect() {
    this.refreshStk();
    this.load();
  }
}
