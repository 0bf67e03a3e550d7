"""Who is calling, and what they may do: identities, roles, OIDC tokens, API keys, audit.

The doors turn credentials into an `Identity` (via `authenticate.Authenticator` or
`dimse_peer.identify`) and ask `roles.allows` / `roles.require`; the core never sees tokens.
"""
