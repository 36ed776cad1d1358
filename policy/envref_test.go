package policy

import (
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestDesignExampleConfig: the configuration example of DESIGN.md, written
// exactly as there (its flow mapping holds a ${VAR}), loads.
func TestDesignExampleConfig(t *testing.T) {
	env := map[string]string{
		"RISKGATE_CLIENT_SECRET":  "client-secret",
		"RISKGATE_SESSION_SECRET": "0123456789abcdef0123456789abcdef",
		"ACME_TOKEN":              "acme-token",
		"ACME_WEBHOOK_SECRET":     "acme-webhook-secret",
	}
	cfg, err := Load("testdata/design/config.yaml", func(k string) string { return env[k] })
	require.NoError(t, err)
	assert.Equal(t, env["RISKGATE_SESSION_SECRET"], cfg.Auth.Session.Secret)
	assert.Equal(t, "8h0m0s", cfg.Auth.Session.TTL.String())
	assert.Equal(t, "acme-token", cfg.Risk.Vendors[0].Token)
}

// TestEnvRefsInFlowMappings: a variable inside a flow mapping expands, its
// value is never parsed as YAML, and errors keep the written column.
func TestEnvRefsInFlowMappings(t *testing.T) {
	const y = `auth:
  issuer: https://idp.example.com
  client_id: riskgate
  session: {secret: ${S}, ttl: 8h}
routes:
  - {name: mail, upstream: "${UP:-http://127.0.0.1:1}", path_prefix: /}
`
	hostile := "x}, cookie_name: evil, z: {" + "0123456789abcdef"
	cfg, err := Parse("flow.yaml", []byte(y), func(k string) string {
		if k == "S" {
			return hostile
		}
		return ""
	})
	require.NoError(t, err)
	assert.Equal(t, hostile, cfg.Auth.Session.Secret, "a value is never YAML")
	assert.Equal(t, "_riskgate", cfg.Auth.Session.CookieName)
	assert.Equal(t, "http://127.0.0.1:1", cfg.Routes[0].Upstream)

	_, err = Parse("flow.yaml", []byte(y), func(string) string { return "" })
	require.Error(t, err)
	assert.Contains(t, err.Error(), "flow.yaml:4:21: environment variable S is not set")

	// "$${" stays a literal "${".
	cfg, err = Parse("lit.yaml", []byte("auth: {issuer: https://idp.example.com, client_id: \"a$${B}\"}\nroutes: [{name: r, upstream: http://x.example}]\n"), nil)
	require.NoError(t, err)
	assert.Equal(t, "a${B}", cfg.Auth.ClientID)
}

func TestDefaultCookieName(t *testing.T) {
	for redirect, want := range map[string]string{
		"https://mail.corp.example/.riskgate/callback": "__Host-riskgate",
		"http://127.0.0.1:8080/.riskgate/callback":     "_riskgate",
		"": "_riskgate",
	} {
		y := "auth: {issuer: https://idp.example.com, client_id: rg, redirect_url: \"" + redirect + "\"}\nroutes: [{name: r, upstream: http://x.example}]\n"
		cfg, err := Parse("c.yaml", []byte(y), nil)
		require.NoError(t, err, redirect)
		assert.Equal(t, want, cfg.Auth.Session.CookieName, redirect)
	}
}

func TestWarnings(t *testing.T) {
	const y = `auth:
  issuer: https://idp.example.com
  client_id: rg
devices:
  sources:
    - client_cert: {}
    - header: {name: X-Device-Id}
routes:
  - {name: mail, upstream: http://mail.internal}
  - {name: docs, upstream: http://docs.internal, path_prefix: /docs}
policies:
  - {name: p, routes: [mail]}
`
	cfg, err := Parse("w.yaml", []byte(y), nil)
	require.NoError(t, err)
	var got []string
	for _, w := range cfg.Warnings {
		got = append(got, w.Error())
	}
	assert.Equal(t, []string{
		"w.yaml:2:3: browser sign-in is off (set auth.redirect_url and auth.session.secret to turn it on): browsers get 401 like API clients",
		"w.yaml:6:20: devices.sources[0]: client_cert yields no device id without server.tls.client_ca_file",
		"w.yaml:7:15: devices.sources[1]: header X-Device-Id has no trusted_cidrs, so no peer may set it",
		"w.yaml:10:5: route \"docs\": no policy applies to it, so every request to it is blocked with no_policy",
	}, got)
}
