// The cloud's HTTP API as the page uses it: every call carries the signed-in bearer
// credentials, every failure becomes an ApiError with the API's own JSON message.
const KEY = "mita.credentials";

export class ApiError extends Error {
  constructor(status, body) {
    super((body && body.message) || `HTTP ${status}`);
    this.status = status;
    this.code = body && body.error;
  }
}

// sessionStorage, not localStorage: a shared phone forgets the key when the tab closes.
export const credentials = {
  get: () => sessionStorage.getItem(KEY),
  set: (value) => sessionStorage.setItem(KEY, value),
  clear: () => sessionStorage.removeItem(KEY),
};

// The bearer each call sends: the stored API key, unless a sign-in gave a function that
// returns a fresh token (Firebase: the SDK renews the hour-long ID token itself).
let tokenSource = null;
export function useTokenSource(source) { tokenSource = source; }

export async function api(method, path, body) {
  const token = tokenSource ? await tokenSource() : credentials.get();
  const headers = { Authorization: `Bearer ${token || ""}` };
  if (body !== undefined) headers["Content-Type"] = "application/json";
  const response = await fetch(path, {
    method, headers, body: body === undefined ? undefined : JSON.stringify(body),
  });
  const text = await response.text();
  let parsed = null;
  try { parsed = text ? JSON.parse(text) : null; } catch { parsed = null; }
  if (!response.ok) throw new ApiError(response.status, parsed);
  return parsed;
}

export const get = (path) => api("GET", path);
export const post = (path, body) => api("POST", path, body ?? {});
export const enc = encodeURIComponent;
