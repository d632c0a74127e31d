"""The self-service portal: a few server-rendered pages where any logged-in user of the
host project (password, LDAP, OIDC, SAML: whatever its authentication) sees and makes
their own keys and their teams' usage. Include it where the project wants it::

    path("gateway/", include("llm_gateway.portal.urls"))

``LLM_GATEWAY_PORTAL=off`` turns every page into a 404. ``sso`` maps an OpenID Connect
provider's group claim onto Django groups (the teams)."""
