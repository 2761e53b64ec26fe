// A real OpenID provider (node-oidc-provider) for the web app's sign-in tests.
// Env: OIDC_PORT, OIDC_ISSUER, OIDC_REDIRECT_URI; prints "ready" once it listens.
// Its dev login form takes any password; the only account is the static test user below.
// POST /__test/next-id-token (body: a JWT) makes the next /token answer carry that ID token,
// standing in for a token endpoint that hands over an ID token minted for another client.
import { generateKeyPairSync } from "node:crypto";
import Provider from "oidc-provider";

const USER = {
  sub: "alice-oidc",
  email: "alice@example.com",
  email_verified: true,
  groups: ["developers"],
};
const redirect = process.env.OIDC_REDIRECT_URI;
const { privateKey } = generateKeyPairSync("rsa", { modulusLength: 2048 });
const jwk = { ...privateKey.export({ format: "jwk" }), kid: "test-oidc-1", use: "sig", alg: "RS256" };

const provider = new Provider(process.env.OIDC_ISSUER, {
  clients: [
    { client_id: "elevate-web", client_secret: "elevate-web-secret", redirect_uris: [redirect] },
    { client_id: "other-app", client_secret: "other-app-secret", redirect_uris: [redirect] },
  ],
  jwks: { keys: [jwk] },
  scopes: ["openid", "email", "profile", "groups", "offline_access"],
  claims: { openid: ["sub"], email: ["email", "email_verified"], groups: ["groups"] },
  conformIdTokenClaims: false, // the ID token itself carries email and groups
  async findAccount(ctx, id) {
    if (id !== USER.email) return undefined;
    return { accountId: id, claims: async () => USER };
  },
  // Consent is implied for the test clients (no consent screen).
  async loadExistingGrant(ctx) {
    const { Grant } = ctx.oidc.provider;
    const grantId = ctx.oidc.session.grantIdFor(ctx.oidc.client.clientId);
    if (grantId) return Grant.find(grantId);
    const grant = new Grant({ clientId: ctx.oidc.client.clientId, accountId: ctx.oidc.session.accountId });
    grant.addOIDCScope("openid email profile groups");
    grant.addOIDCClaims(["email", "email_verified", "groups"]);
    await grant.save();
    return grant;
  },
  ttl: { AccessToken: 600, AuthorizationCode: 60, IdToken: 600, Interaction: 600, Session: 600, Grant: 600 },
});

let nextIdToken = null;
provider.use(async (ctx, next) => {
  if (ctx.path === "/__test/next-id-token" && ctx.method === "POST") {
    let body = "";
    for await (const chunk of ctx.req) body += chunk;
    nextIdToken = body.trim();
    ctx.status = 204;
    return;
  }
  await next();
  if (ctx.path === "/token" && nextIdToken && ctx.body && ctx.body.id_token) {
    ctx.body = { ...ctx.body, id_token: nextIdToken };
    nextIdToken = null;
  }
});

provider.listen(Number(process.env.OIDC_PORT), "127.0.0.1", () => console.log("ready"));
