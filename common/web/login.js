// The one sign-in of every staff page (teller desk, supervisor's watch page, fleet dashboard,
// big screen); served at /ui/login.js. An account signs in with POST /api/v1/auth/login; the
// bearer token lives in this tab's sessionStorage only, under "<key>.token" and "<key>.user",
// so each page keeps its own sign-in.

export class LoginError extends Error {
  // status 0: the network, not the server, failed.
  constructor(status, detail) {
    super(`${status} ${detail}`);
    this.status = status;
    this.detail = detail;
  }
}

// What this tab remembers for one page: {token, user} ("" when signed out).
export function remembered(key) {
  return {
    token: sessionStorage.getItem(`${key}.token`) || "",
    user: sessionStorage.getItem(`${key}.user`) || "",
  };
}

export function forget(key) {
  sessionStorage.removeItem(`${key}.token`);
  sessionStorage.removeItem(`${key}.user`);
}

// The token for username/password; LoginError when refused or unreachable.
export async function signIn(key, username, password) {
  let r;
  try {
    r = await fetch("/api/v1/auth/login", {
      method: "POST",
      headers: { "Content-Type": "application/json" },
      body: JSON.stringify({ username, password }),
    });
  } catch (err) {
    throw new LoginError(0, "network");
  }
  if (!r.ok) {
    let detail = "";
    try { detail = (await r.json()).detail; } catch (err) { /* not JSON */ }
    throw new LoginError(r.status, typeof detail === "string" ? detail : JSON.stringify(detail));
  }
  const { token } = await r.json();
  sessionStorage.setItem(`${key}.token`, token);
  sessionStorage.setItem(`${key}.user`, username);
  return token;
}

// Ends the sign-in on the server too (best effort: the tab forgets the token either way).
export async function signOut(key, token) {
  forget(key);
  if (!token) return;
  await fetch("/api/v1/auth/logout", { method: "POST", headers: { Authorization: `Bearer ${token}` } })
    .catch(() => null);
}

// Wires a sign-in <form>: its username field (autocomplete="username") and password field
// (type="password") are sent on submit; onSignedIn({token, user}) or onFailed(LoginError).
export function loginForm(form, key, { onSignedIn, onFailed, before }) {
  form.addEventListener("submit", async (e) => {
    e.preventDefault();
    if (before) before();
    const user = form.querySelector("[autocomplete=username]").value.trim();
    const password = form.querySelector("input[type=password]");
    let token;
    try {
      token = await signIn(key, user, password.value);
    } catch (err) {
      if (onFailed) onFailed(err);
      return;
    }
    password.value = "";
    await onSignedIn({ token, user });
  });
}
