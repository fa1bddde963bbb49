// How the page signs in, chosen by the cloud's mode (its <meta name="mita-signin">):
// API keys in embedded mode, the Firebase JS SDK in Firebase mode (signin_firebase.js,
// loaded only then). Each kind gives the same four things: restore() (signed in already?),
// form(t, done, message), token() for the API's bearer, and signOut().
import { credentials } from "./api.js";
import { field, h } from "./dom.js";

export function signinSettings(doc = document) {
  const meta = doc.querySelector('meta[name="mita-signin"]');
  try { return meta ? JSON.parse(meta.content) : { mode: "apikey" }; } catch { return { mode: "apikey" }; }
}

export const apiKeySignIn = {
  async restore() { return Boolean(credentials.get()); },
  token: async () => credentials.get(),
  async signOut() { credentials.clear(); },
  form(t, done, message) {
    const key = h("input", { id: "api-key", type: "password", required: true, autocomplete: "current-password" });
    const note = h("p", { id: "signin-error", class: "error", role: "alert" }, message || "");
    const form = h("form", { class: "signin", onsubmit: async (e) => {
      e.preventDefault();
      note.textContent = t("signing_in");
      credentials.set(key.value.trim());
      await done();
    } }, h("h2", {}, t("sign_in")), h("p", {}, t("sign_in_help")), field(t("api_key"), key),
    h("button", { type: "submit" }, t("sign_in")), note);
    return { element: form, focus: key };
  },
};

export async function makeSignIn(settings) {
  if (settings.mode !== "firebase") return apiKeySignIn;
  const { FirebaseSignIn } = await import("./signin_firebase.js");
  return FirebaseSignIn.create(settings);
}
