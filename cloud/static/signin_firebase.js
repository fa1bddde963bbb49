// Firebase mode's sign-in with the Firebase JS SDK (served by this cloud from node_modules;
// the page's import map resolves "firebase/app" and "firebase/auth" to that copy): email and
// password, or a phone number and the SMS code. The API gets the user's ID token, renewed by
// the SDK; the cloud checks it with firebase-admin. Against the Auth emulator (configured in
// the cloud, never by the page) the SDK talks to the emulator and skips reCAPTCHA, which the
// emulator does not ask for.
import { initializeApp } from "firebase/app";
import {
  browserSessionPersistence, connectAuthEmulator, initializeAuth, onAuthStateChanged,
  RecaptchaVerifier, signInWithEmailAndPassword, signInWithPhoneNumber, signOut,
} from "firebase/auth";
import { field, h } from "./dom.js";

// Kenyan numbers as customers write them (07.., 01.., 2547..) into E.164, as Firebase wants.
export function e164(phone) {
  const digits = phone.replace(/[\s-]/g, "");
  if (/^\+\d{8,15}$/.test(digits)) return digits;
  if (/^0[17]\d{8}$/.test(digits)) return "+254" + digits.slice(1);
  if (/^254[17]\d{8}$/.test(digits)) return "+" + digits;
  return digits;
}

function reason(error) {
  return String((error && error.code) || (error && error.message) || error).replace(/^auth\//, "");
}

export class FirebaseSignIn {
  static create(settings) {
    const app = initializeApp({ apiKey: settings.apiKey, authDomain: settings.authDomain,
      projectId: settings.projectId });
    // sessionStorage, as for API keys: a shared phone forgets the sign-in when the tab closes
    const auth = initializeAuth(app, { persistence: browserSessionPersistence });
    if (settings.emulator) {
      connectAuthEmulator(auth, settings.emulator, { disableWarnings: true });
      auth.settings.appVerificationDisabledForTesting = true;
    }
    return new FirebaseSignIn(auth);
  }

  constructor(auth) {
    this.auth = auth;
    this.confirmation = null;
    this.verifier = null;
    this.token = () => (this.auth.currentUser ? this.auth.currentUser.getIdToken() : Promise.resolve(""));
  }

  // the SDK reads its stored session asynchronously: wait for its first answer
  restore() {
    return new Promise((resolve) => {
      const stop = onAuthStateChanged(this.auth, (user) => { stop(); resolve(Boolean(user)); });
    });
  }

  async signOut() {
    this.confirmation = null;
    await signOut(this.auth);
  }

  form(t, done, message) {
    const note = h("p", { id: "signin-error", class: "error", role: "alert" }, message || "");
    const fail = (error) => { note.textContent = t("bad_signin", { reason: reason(error) }); };
    const email = h("input", { id: "email", type: "email", required: true, autocomplete: "username" });
    const password = h("input", { id: "password", type: "password", required: true, autocomplete: "current-password" });
    const byEmail = h("form", { class: "signin", onsubmit: async (e) => {
      e.preventDefault();
      note.textContent = t("signing_in");
      try { await signInWithEmailAndPassword(this.auth, email.value.trim(), password.value); } catch (error) { fail(error); return; }
      await done();
    } }, h("h2", {}, t("sign_in")), field(t("email"), email), field(t("password"), password),
    h("button", { type: "submit" }, t("sign_in_email")));
    return { element: h("div", {}, byEmail, this.phoneForm(t, done, note, fail), note), focus: email };
  }

  phoneForm(t, done, note, fail) {
    const phone = h("input", { id: "phone", type: "tel", required: true, autocomplete: "tel" });
    const code = h("input", { id: "sms-code", inputmode: "numeric", autocomplete: "one-time-code" });
    const send = h("button", { id: "send-code", type: "button", onclick: async () => {
      note.textContent = t("signing_in");
      try {
        if (!this.verifier) this.verifier = new RecaptchaVerifier(this.auth, send, { size: "invisible" });
        this.confirmation = await signInWithPhoneNumber(this.auth, e164(phone.value), this.verifier);
      } catch (error) { fail(error); return; }
      note.textContent = t("code_sent", { phone: e164(phone.value) });
      code.focus();
    } }, t("send_code"));
    return h("form", { class: "signin", onsubmit: async (e) => {
      e.preventDefault();
      if (!this.confirmation) { send.click(); return; }
      try { await this.confirmation.confirm(code.value.trim()); } catch (error) { fail(error); return; }
      await done();
    } }, h("h3", {}, t("phone_signin")), field(t("phone_number"), phone), send, field(t("sms_code"), code),
    h("button", { type: "submit" }, t("sign_in")));
  }
}
