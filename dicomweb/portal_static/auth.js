// Who the portal talks for: an OpenID Connect sign-in (authorization code flow with PKCE, by the
// vendored oidc-client-ts) or a pasted API key. Either way the page keeps one bearer token for
// this tab only (sessionStorage) and sends it as `Authorization: Bearer` on every API call, the
// same credential a script would send. The server says what the token is worth (config.json's
// `you`: role, site, which curator views to offer) and decides again on every call.
//
// Why a library: the code flow is more than PKCE (state and nonce checks, discovery, the token
// request, the `iss` response parameter of RFC 9207, end-session); oidc-client-ts is the
// maintained, certified-provider-tested successor of oidc-client-js and ships a self-contained
// browser build (vendor/oidc-client-ts.min.js, global `oidc`), so nothing is fetched from a CDN.

const TOKEN_KEY = 'archive.token';
const METHOD_KEY = 'archive.signin'; // "oidc" | "key"

let manager = null;

export const token = () => sessionStorage.getItem(TOKEN_KEY);

export const withAuth = (opts = {}) => {
  const t = token();
  return t ? { ...opts, headers: { ...(opts.headers || {}), Authorization: `Bearer ${t}` } } : opts;
};

function keep(value, method) {
  if (value) { sessionStorage.setItem(TOKEN_KEY, value); sessionStorage.setItem(METHOD_KEY, method); } else {
    sessionStorage.removeItem(TOKEN_KEY); sessionStorage.removeItem(METHOD_KEY);
  }
}

/** The OIDC client for `cfg.oidc` (null when the server offers no sign-in). */
function userManager(cfg) {
  if (!cfg.oidc || !window.oidc) return null;
  const o = cfg.oidc;
  return new window.oidc.UserManager({
    authority: o.issuer, client_id: o.client_id, redirect_uri: o.redirect_uri,
    post_logout_redirect_uri: o.post_logout_redirect_uri, response_type: 'code', scope: o.scope,
    userStore: new window.oidc.WebStorageStateStore({ store: window.sessionStorage }),
    loadUserInfo: false, automaticSilentRenew: false, monitorSession: false,
  });
}

/**
 * Start-up: finish a sign-in when the provider redirected back here (`?view=signin&code=...`),
 * drop an expired OIDC token. Returns an error message for the page, or null.
 */
export async function initAuth(cfg) {
  manager = userManager(cfg);
  const q = new URLSearchParams(location.search);
  if (q.get('view') === 'signin') {
    if (!manager) { history.replaceState(null, '', './'); return 'Sign-in is not configured on this server.'; }
    try {
      const user = await manager.signinRedirectCallback();
      keep(user.access_token, 'oidc');
      history.replaceState(null, '', (user.state && user.state.back) || './');
      return null;
    } catch (err) {
      history.replaceState(null, '', './');
      return `Sign-in failed: ${err.message}`;
    }
  }
  if (manager && sessionStorage.getItem(METHOD_KEY) === 'oidc') {
    const user = await manager.getUser();
    if (!user || user.expired) { keep(null); await manager.removeUser(); return 'Your session expired: sign in again.'; }
  }
  return null;
}

export async function signIn() {
  await manager.signinRedirect({ state: { back: location.pathname + location.search } });
}

export async function signOut() {
  const method = sessionStorage.getItem(METHOD_KEY);
  keep(null);
  if (method !== 'oidc' || !manager) { location.reload(); return; }
  await manager.removeUser();
  // End the provider's session too when it offers RP-initiated logout. With the user removed
  // first, the request names our client_id (not an id_token_hint): the provider then asks the
  // person to confirm, and returns to post_logout_redirect_uri.
  const meta = await manager.metadataService.getMetadata().catch(() => ({}));
  if (meta.end_session_endpoint) {
    await manager.signoutRedirect();
  } else {
    location.reload();
  }
}

export function useKey(value) { keep(value, 'key'); }

/** A token the server refused (401): forget it, so the page falls back to anonymous. */
export function forget() { keep(null); if (manager) manager.removeUser(); }

export const signInOffered = () => manager !== null;
export const signedInWith = () => (token() ? sessionStorage.getItem(METHOD_KEY) : null);
