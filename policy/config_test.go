package policy

import (
	"errors"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.yaml.in/yaml/v3"
)

var update = flag.Bool("update", false, "rewrite testdata/*.golden")

// testEnv is the environment the testdata files are parsed with.
func testEnv(name string) string {
	return map[string]string{
		"RISKGATE_CLIENT_SECRET":  "env-client-secret",
		"RISKGATE_SESSION_SECRET": "0123456789abcdef-session",
		"ACME_TOKEN":              "acme-token",
		"ACME_WEBHOOK_SECRET":     "acme-webhook-secret",
		"MTD_HOST":                "mtd.example.com",
	}[name]
}

// TestGolden parses every testdata/*.yaml and compares the outcome ("ok" or
// one FILE:LINE:COL line per error) with its .golden file.
func TestGolden(t *testing.T) {
	files, err := filepath.Glob("testdata/*.yaml")
	require.NoError(t, err)
	require.NotEmpty(t, files)
	for _, file := range files {
		t.Run(filepath.Base(file), func(t *testing.T) {
			_, err := Load(file, testEnv)
			got := "ok\n"
			if err != nil {
				var es Errors
				require.True(t, errors.As(err, &es), "error is not Errors: %v", err)
				for _, e := range es {
					assert.Equal(t, file, e.File)
					assert.Positive(t, e.Line)
					assert.Positive(t, e.Column)
				}
				got = err.Error() + "\n"
			}
			golden := strings.TrimSuffix(file, ".yaml") + ".golden"
			if *update {
				require.NoError(t, os.WriteFile(golden, []byte(got), 0o644))
			}
			want, err := os.ReadFile(golden)
			require.NoError(t, err, "run go test -update to create it")
			assert.Equal(t, string(want), got)
		})
	}
}

func TestValidConfig(t *testing.T) {
	cfg, err := Load("testdata/valid.yaml", testEnv)
	require.NoError(t, err)
	assert.Equal(t, "testdata/valid.yaml", cfg.Path)
	assert.Equal(t, "0.0.0.0:8443", cfg.Server.Listen)
	assert.Equal(t, 20*time.Second, cfg.Server.ShutdownTimeout.Duration)
	assert.Equal(t, filepath.Join("testdata", "certs/server.pem"), cfg.Server.TLS.CertFile, "relative to the config file")
	assert.Equal(t, "/etc/riskgate/intune-ca.pem", cfg.Server.TLS.ClientCAFile)
	assert.Equal(t, "env-client-secret", cfg.Auth.ClientSecret)
	assert.Equal(t, "0123456789abcdef-session", cfg.Auth.Session.Secret)
	assert.Equal(t, 12*time.Hour, cfg.Auth.Session.TTL.Duration)

	require.Len(t, cfg.Devices.Sources, 5)
	assert.Equal(t, "deviceid", cfg.Devices.Sources[0].Claim)
	assert.Equal(t, "urn:device:", cfg.Devices.Sources[1].ClientCert.SANURIPrefix)
	require.NotNil(t, cfg.Devices.Sources[2].ClientCert, "client_cert with no settings")
	assert.Equal(t, []string{"10.0.0.0/8", "fd00::/8"}, cfg.Devices.Sources[3].Header.TrustedCIDRs)
	assert.Equal(t, 28, cfg.Devices.Sources[0].Line)
	assert.Equal(t, 7, cfg.Devices.Sources[0].Column)

	v := cfg.Risk.Vendors
	require.Len(t, v, 5)
	assert.Equal(t, "acme-token", v[0].Token)
	assert.Equal(t, "graph-client-secret", v[1].ClientSecret, "from client_secret_file, newline trimmed")
	assert.Equal(t, "acme-token-from-file", v[2].Token)
	assert.Equal(t, "lookout-webhook-secret-0123", v[2].WebhookSecret)
	assert.Equal(t, "zim-api-key", v[3].APIKey)
	assert.Equal(t, "default-key", v[4].APIKey, "${VAR:-default}")
	assert.Equal(t, 30*time.Second, v[2].Interval.Duration, "default")
	assert.Equal(t, 1000, v[2].PageSize, "default")
	assert.Equal(t, 39, v[0].Line)

	require.Len(t, cfg.Routes, 2)
	assert.Equal(t, "Mail", cfg.Routes[0].DisplayName)
	assert.Equal(t, "docs", cfg.Routes[1].DisplayName, "defaults to the name")
	assert.Equal(t, 69, cfg.Routes[0].Line)

	require.Len(t, cfg.Policies, 2)
	p := cfg.Policies[0]
	assert.Equal(t, map[string]string{"ios": "16.0", "android": "12"}, p.MinOS)
	assert.Equal(t, 79, p.Line)
	assert.Equal(t, 5, p.Column)
	assert.Equal(t, ModeReportOnly, cfg.Policies[1].Mode)
	assert.False(t, *cfg.Policies[1].RequireDevice)
	assert.Equal(t, time.Hour, cfg.Policies[1].GracePeriod.Duration)
}

func TestDefaults(t *testing.T) {
	cfg, err := Parse("min.yaml", []byte(`
auth: {issuer: "https://idp.example.com", client_id: rg}
risk:
  vendors: [{name: v, type: generic, url: "https://v.example"}]
routes: [{name: r, upstream: "http://up.internal"}]
policies: [{name: p}]
`), testEnv)
	require.NoError(t, err)
	assert.Equal(t, "127.0.0.1:8080", cfg.Server.Listen)
	assert.Equal(t, "127.0.0.1:9090", cfg.Server.AdminListen)
	assert.Equal(t, 15*time.Second, cfg.Server.ShutdownTimeout.Duration)
	assert.Equal(t, 30*time.Second, cfg.Server.UpstreamTimeout.Duration)
	assert.Equal(t, []string{"openid", "email", "profile"}, cfg.Auth.Scopes)
	assert.Equal(t, []string{"rg"}, cfg.Auth.Audiences)
	assert.Equal(t, "email", cfg.Auth.UserClaim)
	assert.Equal(t, "groups", cfg.Auth.GroupsClaim)
	assert.Equal(t, 8*time.Hour, cfg.Auth.Session.TTL.Duration)
	assert.Equal(t, "_riskgate", cfg.Auth.Session.CookieName)
	assert.Equal(t, 24*time.Hour, cfg.Risk.MaxAge.Duration)
	assert.Equal(t, 100000, cfg.Risk.CacheSize)
	assert.Equal(t, time.Minute, cfg.Risk.StateInterval.Duration)
	assert.Equal(t, 30*time.Second, cfg.Risk.Vendors[0].Interval.Duration)
	assert.Equal(t, 30*time.Second, cfg.Risk.Vendors[0].Timeout.Duration)
	assert.Equal(t, 1000, cfg.Risk.Vendors[0].PageSize)
	assert.Equal(t, "/", cfg.Routes[0].PathPrefix)
	p := cfg.Policies[0]
	assert.Equal(t, ModeEnforce, p.Mode)
	assert.Equal(t, "low", p.MaxRisk)
	assert.True(t, *p.RequireDevice)
	assert.True(t, *p.RequireOwnerMatch)
	assert.Equal(t, ActionBlock, p.OnUnknown)
	assert.Equal(t, ActionBlock, p.OnStale)
	assert.Zero(t, p.GracePeriod.Duration)
}

func TestParseErrors(t *testing.T) {
	base := "auth: {issuer: \"https://idp.example.com\", client_id: rg}\nroutes: [{name: r, upstream: \"http://up.internal\"}]\n"
	tests := []struct {
		name string
		yaml string
		want string
	}{
		{"unknown key in policy", "policies:\n  - name: p\n    foo: 1\n", `x.yaml:5:5: unknown key "foo" in policies[0]`},
		{"typo suggestion", "policies:\n  - name: p\n    max_rsk: low\n", `x.yaml:5:5: unknown key "max_rsk" in policies[0] (did you mean "max_risk"?)`},
		{"unset env", "risk: {state_file: \"${NOPE}\"}\n", `x.yaml:3:20: environment variable NOPE is not set`},
		{"negative duration", "risk: {max_age: -1s}\n", `x.yaml:3:17: risk.max_age: duration "-1s" must not be negative`},
		{"duplicate top-level key", "auth: {session: {secret: abc}}\n", `x.yaml:3:1: duplicate key "auth"`},
		{"vendor type", "risk: {vendors: [{name: v, type: foo, url: \"https://v\"}]}\n", `x.yaml:3:34: risk.vendors[0]: unknown vendor type "foo" (want one of generic, graph, lookout, zimperium, checkpoint)`},
		{"policy route", "policies: [{name: p, routes: [nope]}]\n", `x.yaml:3:31: policies[0]: route "nope" does not exist (routes: r)`},
		{"both secret forms", "risk: {vendors: [{name: v, type: generic, url: \"https://v\", token: a, token_file: b}]}\n", `x.yaml:3:83: set risk.vendors[0].token or risk.vendors[0].token_file, not both`},
		{"unreadable secret", "risk: {vendors: [{name: v, type: generic, url: \"https://v\", token_file: /nonexistent/x}]}\n", `x.yaml:3:73: risk.vendors[0].token_file: open /nonexistent/x: no such file or directory`},
		{"secret not regular", "risk: {vendors: [{name: v, type: generic, url: \"https://v\", token_file: /dev/zero}]}\n", `x.yaml:3:73: risk.vendors[0].token_file: /dev/zero is not a regular file`},
		{"header without name", "devices: {sources: [{header: {trusted_cidrs: []}}]}\n", `x.yaml:3:30: devices.sources[0].header: name is required`},
		{"no source kind", "devices: {sources: [{query: \"\"}]}\n", `x.yaml:3:21: devices.sources[0]: set exactly one of claim, client_cert, header, query`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Parse("x.yaml", []byte(base+tt.yaml), testEnv)
			require.Error(t, err)
			assert.Equal(t, tt.want, err.Error())
		})
	}
}

func TestSessionSecretLength(t *testing.T) {
	_, err := Parse("x.yaml", []byte("auth: {issuer: \"https://i.example\", client_id: rg, session: {secret: abc}}\n"), testEnv)
	require.EqualError(t, err, `x.yaml:1:70: auth.session.secret must be at least 16 bytes (got 3)`)
}

func TestTooManyPolicies(t *testing.T) {
	var b strings.Builder
	b.WriteString("auth: {issuer: \"https://i.example\", client_id: rg}\npolicies:\n")
	for i := range MaxPolicies + 1 {
		fmt.Fprintf(&b, "  - name: p%d\n", i)
	}
	_, err := Parse("x.yaml", []byte(b.String()), testEnv)
	require.EqualError(t, err, fmt.Sprintf("x.yaml:%d:5: too many policies (257): at most 256", MaxPolicies+3))

	_, err = Parse("x.yaml", []byte(strings.TrimSuffix(b.String(), "  - name: p256\n")), testEnv)
	require.NoError(t, err)
}

func TestEnvEscape(t *testing.T) {
	got, err := expandEnv("a$${B}c${ACME_TOKEN}-${X:-d}$", testEnv)
	require.NoError(t, err)
	assert.Equal(t, "a${B}cacme-token-d$", got)
}

func TestBillionLaughs(t *testing.T) {
	// Aliases that multiply must be cut off, not decoded exponentially.
	doc := "x-a: &a [{name: p}, {name: p}, {name: p}, {name: p}, {name: p}, {name: p}, {name: p}, {name: p}]\n"
	prev := "a"
	for i := range 8 {
		name := fmt.Sprintf("b%d", i)
		doc += fmt.Sprintf("x-%s: &%s [*%s, *%s, *%s, *%s, *%s, *%s, *%s, *%s]\n", name, name, prev, prev, prev, prev, prev, prev, prev, prev)
		prev = name
	}
	doc += "devices: {sources: *" + prev + "}\n"
	_, err := Parse("x.yaml", []byte(doc), testEnv)
	require.Error(t, err)
}

// TestValidUsesEveryKey keeps testdata/valid.yaml complete: every key of the
// Config model appears in it.
func TestValidUsesEveryKey(t *testing.T) {
	data, err := os.ReadFile("testdata/valid.yaml")
	require.NoError(t, err)
	var doc yaml.Node
	require.NoError(t, yaml.Unmarshal(data, &doc))
	have := map[string]bool{}
	var walk func(n *yaml.Node, path string)
	walk = func(n *yaml.Node, path string) {
		switch n.Kind {
		case yaml.DocumentNode:
			walk(n.Content[0], path)
		case yaml.SequenceNode:
			for _, c := range n.Content {
				walk(c, path+"[]")
			}
		case yaml.MappingNode:
			for i := 0; i < len(n.Content); i += 2 {
				p := join(path, n.Content[i].Value)
				have[p] = true
				if !strings.HasSuffix(p, "min_os") {
					walk(n.Content[i+1], p)
				}
			}
		}
	}
	walk(&doc, "")
	var want []string
	var keys func(t reflect.Type, path string)
	keys = func(t reflect.Type, path string) {
		for t.Kind() == reflect.Pointer || t.Kind() == reflect.Slice {
			if t.Kind() == reflect.Slice {
				path += "[]"
			}
			t = t.Elem()
		}
		if t.Kind() != reflect.Struct || t == durationType {
			return
		}
		for i := range t.NumField() {
			name, _, _ := strings.Cut(t.Field(i).Tag.Get("yaml"), ",")
			if name == "" || name == "-" {
				continue
			}
			p := join(path, name)
			want = append(want, p)
			keys(t.Field(i).Type, p)
		}
	}
	keys(reflect.TypeFor[Config](), "")
	for _, k := range want {
		// A secret and its _file form exclude each other: one of them
		// in valid.yaml, the other in valid_files.yaml.
		if strings.HasSuffix(k, "_file") && have[strings.TrimSuffix(k, "_file")] || have[k+"_file"] {
			continue
		}
		assert.True(t, have[k], "testdata/valid.yaml does not use %s", k)
	}
}

// FuzzParse checks that Parse never panics and that every error it reports
// has a position.
func FuzzParse(f *testing.F) {
	files, err := filepath.Glob("testdata/*.yaml")
	require.NoError(f, err)
	for _, file := range files {
		data, err := os.ReadFile(file)
		require.NoError(f, err)
		f.Add(data)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		const path = "testdata/fuzz.yaml"
		cfg, err := Parse(path, data, testEnv)
		if err == nil {
			require.NotNil(t, cfg)
			_, err := Compile(cfg)
			require.NoError(t, err, "a config that parses must compile")
			return
		}
		var es Errors
		require.True(t, errors.As(err, &es), "error is not Errors: %v", err)
		require.NotEmpty(t, es)
		for _, e := range es {
			require.Equal(t, path, e.File)
			require.Positive(t, e.Line, e.Msg)
			require.Positive(t, e.Column, e.Msg)
			require.NotEmpty(t, e.Msg)
		}
	})
}

func TestSecretFiles(t *testing.T) {
	cfg, err := Load("testdata/valid_files.yaml", testEnv)
	require.NoError(t, err)
	assert.Equal(t, "file-client-secret", cfg.Auth.ClientSecret)
	assert.Equal(t, "a-session-secret-from-a-file", cfg.Auth.Session.Secret)
	assert.Equal(t, filepath.Join("testdata", "secrets", "session"), cfg.Auth.Session.SecretFile)
	assert.Equal(t, "env-client-secret", cfg.Risk.Vendors[0].ClientSecret)
}

func TestSecretFileCRLFAndBOM(t *testing.T) {
	// A secret saved by a Windows editor: BOM and CRLF are not part of it.
	cfg, err := Load("testdata/secrets_crlf.yaml", testEnv)
	require.NoError(t, err)
	assert.Equal(t, "crlf-session-secret-0123", cfg.Auth.Session.Secret)
}

func TestDurationHints(t *testing.T) {
	for in, want := range map[string]string{
		"1d":   `bad duration "1d": there is no unit for days, write "24h" (want e.g. "30s", "5m", "8h")`,
		"2w":   `bad duration "2w": there is no unit for weeks, write "336h" (want e.g. "30s", "5m", "8h")`,
		"1.5d": `bad duration "1.5d": there is no unit for days, write hours (1d = 24h) (want e.g. "30s", "5m", "8h")`,
		"30":   `bad duration "30": a unit is required (want e.g. "30s", "5m", "8h")`,
		"soon": `bad duration "soon" (want e.g. "30s", "5m", "8h")`,
		"2nd":  `bad duration "2nd" (want e.g. "30s", "5m", "8h")`,
	} {
		var d Duration
		err := d.UnmarshalYAML(&yaml.Node{Kind: yaml.ScalarNode, Tag: "!!str", Value: in})
		assert.EqualError(t, err, want, in)
	}
}
