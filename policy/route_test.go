package policy

import (
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

const routeConfig = `
auth: {issuer: "https://idp.example.com", client_id: rg}
routes:
  - {name: any-root, upstream: "http://root.internal"}
  - {name: any-mail, host: "*", path_prefix: /mail, upstream: "http://anymail.internal"}
  - {name: mail, host: Mail.Corp.Example, upstream: "http://exchange.internal:8080/base", display_name: Mail}
  - {name: mail-owa, host: mail.corp.example, path_prefix: /owa, upstream: "http://owa.internal"}
  - {name: mail-owa-api, host: mail.corp.example, path_prefix: /owa/api/, upstream: "http://owa-api.internal"}
  - {name: ipv6, host: "[::1]", path_prefix: /, upstream: "http://v6.internal"}
`

func TestRoute(t *testing.T) {
	s := mustSet(t, routeConfig)
	tests := []struct {
		host, path string
		want       string
	}{
		{"mail.corp.example", "/", "mail"},
		{"MAIL.corp.example:443", "/inbox", "mail"},
		{"mail.corp.example.", "/inbox", "mail"},
		{"mail.corp.example", "/owa", "mail-owa"},
		{"mail.corp.example", "/owa/", "mail-owa"},
		{"mail.corp.example", "/owa/x", "mail-owa"},
		{"mail.corp.example", "/owabox", "mail"},
		{"mail.corp.example", "/OWA/x", "mail-owa"}, // IIS paths are case-insensitive
		{"mail.corp.example", "/Owa/API/v1", "mail-owa-api"},
		{"mail.corp.example", "/owa/api", "mail-owa"},
		{"mail.corp.example", "/owa/api/v1", "mail-owa-api"},
		{"mail.corp.example", "/mail", "mail"}, // an exact host beats the wildcard
		{"other.example", "/mail", "any-mail"},
		{"other.example", "/mail/x", "any-mail"},
		{"other.example", "/mailbox", "any-root"},
		{"other.example", "", "any-root"},
		{"", "/x", "any-root"},
		{"[::1]:8080", "/x", "ipv6"},
	}
	for _, tt := range tests {
		t.Run(tt.host+tt.path, func(t *testing.T) {
			r, ok := s.Route(tt.host, tt.path)
			require.True(t, ok)
			assert.Equal(t, tt.want, r.Name)
		})
	}

	r, _ := s.Route("mail.corp.example", "/")
	assert.Equal(t, "Mail", r.DisplayName)
	assert.Equal(t, "mail.corp.example", r.Host)
	assert.Equal(t, "exchange.internal:8080", r.Upstream.Host)
	assert.Equal(t, "/base", r.Upstream.Path)
	assert.Equal(t, 2, r.Index)
	assert.Same(t, s.Routes()[2], r)
	assert.Len(t, s.Routes(), 6)
	assert.Equal(t, "/", s.Config().Routes[0].PathPrefix)
}

func TestRouteNoMatch(t *testing.T) {
	s := mustSet(t, `
auth: {issuer: "https://idp.example.com", client_id: rg}
routes:
  - {name: mail, host: mail.corp.example, path_prefix: /owa, upstream: "http://owa.internal"}
`)
	for _, tt := range [][2]string{{"mail.corp.example", "/"}, {"mail.corp.example", "/owabox"}, {"other", "/owa"}} {
		_, ok := s.Route(tt[0], tt[1])
		assert.False(t, ok, tt)
	}
}

func TestRouteAllocs(t *testing.T) {
	s := mustSet(t, routeConfig)
	assert.Zero(t, testing.AllocsPerRun(100, func() { s.Route("MAIL.Corp.Example:443", "/owa/x") }))
}

func TestCompileRejectsHandBuilt(t *testing.T) {
	_, err := Compile(&Config{Routes: []Route{{Name: "r", Upstream: "not a url"}}})
	require.Error(t, err)
	_, err = Compile(&Config{Policies: []Policy{{Name: "p", MaxRisk: "extreme"}}})
	require.Error(t, err)
	s, err := Compile(&Config{Policies: []Policy{{Name: "p"}}})
	require.NoError(t, err, "unset fields take their defaults")
	d := s.Evaluate(&Facts{User: "u", DeviceID: "d", Risk: LevelMedium, Owner: "u"})
	assert.Equal(t, ReasonRiskTooHigh, d.Reason, "max_risk defaults to low")
}
