// The dashboard's entry: sign-in, the language, the live feed and which view shows.
// Routes (after #): /            customer: their meter (or list); operator: the fleet
//                   /meter/<no>  one meter (the API refuses another customer's: 403)
import { get, useTokenSource } from "./api.js";
import { h } from "./dom.js";
import { makeTranslator, translatePage } from "./i18n.js";
import { LiveFeed } from "./live.js";
import { MeterView } from "./meter_view.js";
import { OperatorView } from "./operator_view.js";
import { makeSignIn, signinSettings } from "./signin.js";

const LANG_KEY = "mita.lang";
const main = document.getElementById("app");
const langSelect = document.getElementById("lang");
const signOut = document.getElementById("signout");
const liveBadge = document.getElementById("live");

const state = { t: makeTranslator("en"), me: null, view: null, feed: null, signin: null };

function setLang(lang) {
  localStorage.setItem(LANG_KEY, lang);
  document.documentElement.lang = lang;
  langSelect.value = lang;
  state.t = makeTranslator(lang);
  translatePage(document, state.t);
}

function signInForm(message) {
  if (!state.signin) {
    main.replaceChildren(h("p", { class: "error", role: "alert" }, state.t("signin_unavailable")));
    return;
  }
  const { element, focus } = state.signin.form(state.t, start, message);
  main.replaceChildren(element);
  focus.focus();
}

function routeView() {
  const path = location.hash.replace(/^#/, "") || "/";
  const match = path.match(/^\/meter\/(.+)$/);
  const ctx = { t: state.t, me: state.me };
  if (match) return new MeterView(ctx, decodeURIComponent(match[1]));
  if (state.me.role === "operator") return new OperatorView(ctx);
  if (state.me.meters.length === 1) return new MeterView(ctx, state.me.meters[0].meter_no);
  return {
    mount: (container) => container.replaceChildren(h("section", {}, h("h2", {}, state.t("my_meters")),
      h("ul", {}, state.me.meters.map((m) => h("li", {},
        h("a", { href: `#/meter/${encodeURIComponent(m.meter_no)}` }, m.meter_no)))))),
    onEvent() {}, onReconnect() {},
  };
}

async function show() {
  const previous = state.view;
  state.view = routeView();
  if (previous && previous.meterNo && previous.meterNo === state.view.meterNo) {
    // same meter, new words (a language change): the payment under way stays on screen
    state.view.stk = previous.stk;
    state.view.receipts = previous.receipts;
  }
  await state.view.mount(main);
}

function setLive(mode) {
  liveBadge.dataset.state = mode;
  liveBadge.textContent = mode === "live" ? state.t("live_on") : state.t("live_off");
  if (mode === "unauthorized") stop(state.t("bad_key"));
}

let firstOpen = true;
async function start() {
  try {
    state.me = await get("/api/me");
  } catch (error) {
    await state.signin.signOut();
    const refused = signinSettings().mode === "firebase" ? "bad_token" : "bad_key";
    signInForm(error.status === 401 ? state.t(refused) : state.t("error", { message: error.message }));
    return;
  }
  signOut.hidden = false;
  await show();
  firstOpen = true;
  state.feed = new LiveFeed({
    onEvent: (event) => state.view && state.view.onEvent(event),
    // the first open follows the view's own load; later ones mean events were missed
    onOpen: () => { if (!firstOpen && state.view) state.view.onReconnect(); firstOpen = false; },
    onState: setLive,
  });
  state.feed.start();
}

function stop(message) {
  if (state.feed) state.feed.stop();
  state.feed = null;
  state.me = null;
  state.view = null;
  if (state.signin) state.signin.signOut();
  signOut.hidden = true;
  liveBadge.textContent = "";
  signInForm(message);
}

langSelect.addEventListener("change", () => {
  setLang(langSelect.value);
  if (state.me) show(); else if (state.signin) signInForm();
});
signOut.addEventListener("click", () => stop());
window.addEventListener("hashchange", () => { if (state.me) show(); });

async function boot() {
  setLang(localStorage.getItem(LANG_KEY) || "en");
  try {
    state.signin = await makeSignIn(signinSettings());
  } catch (error) {
    console.error("sign-in could not load", error);
    signInForm();
    return;
  }
  useTokenSource(state.signin.token);
  if (await state.signin.restore()) start(); else signInForm();
}

boot();
