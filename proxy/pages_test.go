package proxy

import (
	"bytes"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/riskgate/riskgate/policy"
)

var testBranding = policy.Branding{
	Organization: "Corp Example",
	SupportURL:   "https://help.corp.example/mtd",
	SupportEmail: "helpdesk@corp.example",
	LogoURL:      "https://cdn.corp.example/logo.svg",
}

func renderBlock(t *testing.T, p *Pages, d BlockData) (*http.Response, string) {
	t.Helper()
	rec := httptest.NewRecorder()
	require.NoError(t, p.Block(rec, d))
	return rec.Result(), rec.Body.String()
}

func TestBlockPageReasons(t *testing.T) {
	p, err := NewPages(testBranding)
	require.NoError(t, err)
	base := BlockData{App: "Mail", Policy: "mobile-risk", RequestID: "req-42", RetryURL: "/owa/?x=1&y=2"}
	tests := []struct {
		reason policy.Reason
		edit   func(*BlockData)
		title  string
		want   []string
	}{
		{policy.ReasonRiskTooHigh, func(d *BlockData) { d.Risk, d.Vendor, d.MaxRisk = "high", "acme", "low" },
			"This device can&#39;t open Mail right now",
			[]string{"(acme) rates this device&#39;s risk as high", "rated low or lower", "Open the acme threat-defense app", "resolve every threat"}},
		{policy.ReasonOSTooOld, func(d *BlockData) { d.Platform, d.OSVersion, d.MinOS = "ios", "15.2", "16.0" },
			"This device can&#39;t open Mail right now",
			[]string{"runs iOS 15.2", "needs iOS 16.0 or later", "Settings › General › Software Update"}},
		{policy.ReasonDeviceUnknown, nil, "This device can&#39;t open Mail right now",
			[]string{"no report about this device", "Install your organization&#39;s threat-defense app"}},
		{policy.ReasonRiskStale, func(d *BlockData) { d.Vendor = "acme" }, "This device can&#39;t open Mail right now",
			[]string{"couldn&#39;t be confirmed recently", "Open the acme threat-defense app"}},
		{policy.ReasonDeviceMissing, nil, "We couldn&#39;t recognise this device",
			[]string{"didn&#39;t say which device", "enroll it"}},
		{policy.ReasonDeviceNotOwned, func(d *BlockData) { d.SignOutURL = "/.riskgate/logout?rd=/" },
			"This device can&#39;t open Mail right now",
			[]string{"registered to a different user", `href="/.riskgate/logout?rd=/"`, "Sign out"}},
		{policy.ReasonPlatformBlocked, func(d *BlockData) { d.Platform = "android" }, "This device can&#39;t open Mail right now",
			[]string{"Mail can&#39;t be opened from Android devices"}},
		{policy.ReasonNoPolicy, func(d *BlockData) { d.Policy = "" }, "You can&#39;t open Mail right now",
			[]string{"No access rule allows your account"}},
	}
	for _, tc := range tests {
		t.Run(string(tc.reason), func(t *testing.T) {
			d := base
			d.Reason = tc.reason
			if tc.edit != nil {
				tc.edit(&d)
			}
			resp, body := renderBlock(t, p, d)
			assert.Equal(t, http.StatusForbidden, resp.StatusCode)
			assert.Equal(t, "text/html; charset=utf-8", resp.Header.Get("Content-Type"))
			assert.Equal(t, "no-store", resp.Header.Get("Cache-Control"))
			assert.Equal(t, "nosniff", resp.Header.Get("X-Content-Type-Options"))
			assert.Equal(t, "default-src 'none'; style-src 'unsafe-inline'; img-src https://cdn.corp.example; base-uri 'none'; form-action 'none'; frame-ancestors 'none'",
				resp.Header.Get("Content-Security-Policy"))
			assert.Contains(t, body, "<h1>"+tc.title+"</h1>")
			for _, w := range tc.want {
				assert.Contains(t, body, w)
			}
			assert.Contains(t, body, `<meta name="viewport" content="width=device-width, initial-scale=1">`)
			assert.Contains(t, body, "<dd>req-42</dd>")
			assert.Contains(t, body, "<dd>"+string(tc.reason)+"</dd>")
			assert.Contains(t, body, `href="/owa/?x=1&amp;y=2">Try again</a>`)
			assert.Contains(t, body, `<img class="logo" src="https://cdn.corp.example/logo.svg" alt="Corp Example">`)
			assert.Contains(t, body, `href="https://help.corp.example/mtd"`)
			assert.Contains(t, body, `href="mailto:helpdesk@corp.example"`)
			// Nothing is loaded from anywhere but the logo's origin.
			assert.NotContains(t, body, "<script")
			assert.NotContains(t, body, "<link")
			assert.Equal(t, 1, strings.Count(body, "src="))
		})
	}
}

func TestBlockPageEscapesAndSanitizes(t *testing.T) {
	p, err := NewPages(policy.Branding{SupportURL: "javascript:alert(1)", LogoURL: "javascript:alert(2)"})
	require.NoError(t, err)
	resp, body := renderBlock(t, p, BlockData{App: `<script>alert(3)</script>`, Reason: policy.ReasonRiskTooHigh,
		Vendor: `"><img src=x onerror=alert(4)>`, RequestID: "r", RetryURL: "javascript:alert(5)"})
	assert.Equal(t, http.StatusForbidden, resp.StatusCode)
	assert.NotContains(t, body, "<script>alert")
	assert.NotContains(t, body, "<img src=x")
	assert.NotContains(t, body, "javascript:")
	assert.Contains(t, body, "&lt;script&gt;alert(3)&lt;/script&gt;")
	assert.Contains(t, body, "your organization", "default organization name")
	assert.Contains(t, resp.Header.Get("Content-Security-Policy"), "img-src 'none'")
}

func TestErrorPages(t *testing.T) {
	p, err := NewPages(testBranding)
	require.NoError(t, err)
	tests := []struct {
		status int
		data   ErrorData
		want   []string
	}{
		{http.StatusUnauthorized, ErrorData{RequestID: "r1", SignInURL: "/.riskgate/login?rd=%2Fmail"},
			[]string{"<h1>Sign in required</h1>", "Corp Example account", `href="/.riskgate/login?rd=%2Fmail">Sign in</a>`}},
		{http.StatusNotFound, ErrorData{RequestID: "r2"}, []string{"<h1>Page not found</h1>"}},
		{http.StatusBadGateway, ErrorData{App: "Mail", RequestID: "r3", RetryURL: "/mail"},
			[]string{"<h1>Mail isn&#39;t responding</h1>", "Your device and account are fine", `href="/mail">Try again</a>`}},
		{http.StatusInternalServerError, ErrorData{RequestID: "r4"}, []string{"<h1>Something went wrong</h1>"}},
		{http.StatusBadRequest, ErrorData{RequestID: "r5", Title: "Sign-in failed", Message: "Start again."},
			[]string{"<h1>Sign-in failed</h1>", "<p>Start again.</p>"}},
	}
	for _, tc := range tests {
		t.Run(http.StatusText(tc.status), func(t *testing.T) {
			rec := httptest.NewRecorder()
			require.NoError(t, p.Error(rec, tc.status, tc.data))
			assert.Equal(t, tc.status, rec.Code)
			body := rec.Body.String()
			for _, w := range tc.want {
				assert.Contains(t, body, w)
			}
			assert.Contains(t, body, "<dd>"+tc.data.RequestID+"</dd>")
			assert.Contains(t, body, "helpdesk@corp.example")
			assert.NotContains(t, body, "<dt>Reason</dt>")
		})
	}
}

func TestCustomBlockTemplate(t *testing.T) {
	dir := t.TempDir()
	write := func(name, src string) string {
		path := filepath.Join(dir, name)
		require.NoError(t, os.WriteFile(path, []byte(src), 0o600))
		return path
	}
	b := testBranding
	b.TemplateFile = write("ok.html", `<p>{{.Organization}}: {{.App}} blocked ({{.Reason}}, {{.Risk}} by {{.Vendor}}), id {{.RequestID}}, status {{.Status}}</p>{{range .Steps}}<li>{{.}}</li>{{end}}`)
	p, err := NewPages(b)
	require.NoError(t, err)
	resp, body := renderBlock(t, p, BlockData{App: "Mail<x>", Reason: policy.ReasonRiskTooHigh, Risk: "high", Vendor: "acme", RequestID: "r9"})
	assert.Equal(t, http.StatusForbidden, resp.StatusCode)
	assert.Contains(t, body, "<p>Corp Example: Mail&lt;x&gt; blocked (risk_too_high, high by acme), id r9, status 403</p>")
	assert.Contains(t, body, "<li>Open the acme threat-defense app")

	rec := httptest.NewRecorder()
	require.NoError(t, p.Error(rec, http.StatusNotFound, ErrorData{}))
	assert.Contains(t, rec.Body.String(), "<h1>Page not found</h1>", "error pages keep the built-in template")

	for name, src := range map[string]string{
		"syntax":        `{{if .App}}`,
		"unknown field": `{{.Upstream}}`,
	} {
		t.Run(name, func(t *testing.T) {
			b.TemplateFile = write(name+".html", src)
			_, err := NewPages(b)
			assert.ErrorContains(t, err, "proxy: pages")
		})
	}
	b.TemplateFile = filepath.Join(dir, "missing.html")
	_, err = NewPages(b)
	assert.Error(t, err)
}

func TestPagesAsPageRenderer(t *testing.T) {
	p, err := NewPages(testBranding)
	require.NoError(t, err)
	var r PageRenderer = p
	var buf bytes.Buffer
	require.NoError(t, r.RenderPage(&buf, Page{Status: http.StatusForbidden, RequestID: "r7",
		Block: &BlockInfo{Reason: policy.ReasonOSTooOld, Policy: "p", RouteDisplayName: "Mail"}}))
	assert.Contains(t, buf.String(), "This device can&#39;t open Mail right now")
	assert.Contains(t, buf.String(), "<dd>r7</dd>")
	buf.Reset()
	require.NoError(t, r.RenderPage(&buf, Page{Status: http.StatusUnauthorized, Message: "Sign in first.", RequestID: "r8"}))
	assert.Contains(t, buf.String(), "<h1>Sign in required</h1>")
}

func TestSignOutPage(t *testing.T) {
	const baseCSP = "default-src 'none'; style-src 'unsafe-inline'; img-src https://cdn.corp.example; base-uri 'none'; "
	p, err := NewPages(testBranding)
	require.NoError(t, err)
	tests := []struct {
		name    string
		targets []string
		action  string
	}{
		{"self only", nil, "form-action 'self'"},
		{"identity provider", []string{"https://idp.corp.example/logout?x=1", "https://mail.corp.example:8443/cb", "https://IDP.corp.example/other"},
			"form-action 'self' https://idp.corp.example https://mail.corp.example:8443"},
		{"junk ignored", []string{"javascript:alert(1)", "/relative", "https://a;b.example/", "https://x.example 'unsafe-inline'", "data:text/html,x", "ftp://idp.example/"},
			"form-action 'self'"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			rec := httptest.NewRecorder()
			require.NoError(t, p.SignOut(rec, SignOutData{Action: LogoutPath, Token: "tok-1", Return: "/owa/?x=1&y=2", FormTargets: tc.targets}))
			resp, body := rec.Result(), rec.Body.String()
			assert.Equal(t, http.StatusOK, resp.StatusCode)
			assert.Equal(t, "no-store", resp.Header.Get("Cache-Control"))
			assert.Equal(t, baseCSP+tc.action+"; frame-ancestors 'none'", resp.Header.Get("Content-Security-Policy"))
			assert.Contains(t, body, "<h1>Sign out of Corp Example?</h1>")
			assert.Contains(t, body, `<form method="post" action="/.riskgate/logout">`)
			assert.Contains(t, body, `<input type="hidden" name="csrf" value="tok-1">`)
			assert.Contains(t, body, `<input type="hidden" name="rd" value="/owa/?x=1&amp;y=2">`)
			assert.Contains(t, body, `<button class="btn" type="submit">Sign out</button>`)
			assert.Contains(t, body, `<a class="btn secondary" href="/owa/?x=1&amp;y=2">Cancel</a>`)
			assert.NotContains(t, body, "<script")
			assert.NotContains(t, body, "Try again")
		})
	}
	t.Run("escapes", func(t *testing.T) {
		rec := httptest.NewRecorder()
		require.NoError(t, p.SignOut(rec, SignOutData{Action: LogoutPath, Token: `"><script>`, Return: `javascript:alert(1)`}))
		body := rec.Body.String()
		assert.NotContains(t, body, "<script>")
		assert.NotContains(t, body, `href="javascript:`)
	})
	t.Run("other pages keep form-action none", func(t *testing.T) {
		rec := httptest.NewRecorder()
		require.NoError(t, p.Error(rec, http.StatusForbidden, ErrorData{}))
		assert.Contains(t, rec.Header().Get("Content-Security-Policy"), "form-action 'none';")
		assert.Contains(t, p.ContentSecurityPolicy(), "form-action 'none';")
	})
}

// TestWriteSamplePages writes a sample of every page to the directory in
// RISKGATE_PAGES_DIR, to look at them in a browser (skipped otherwise).
func TestWriteSamplePages(t *testing.T) {
	dir := os.Getenv("RISKGATE_PAGES_DIR")
	if dir == "" {
		t.Skip("RISKGATE_PAGES_DIR not set")
	}
	require.NoError(t, os.MkdirAll(dir, 0o755))
	p, err := NewPages(policy.Branding{Organization: "Corp Example", SupportURL: "https://help.corp.example", SupportEmail: "helpdesk@corp.example"})
	require.NoError(t, err)
	save := func(name string, rec *httptest.ResponseRecorder) {
		require.NoError(t, os.WriteFile(filepath.Join(dir, name+".html"), rec.Body.Bytes(), 0o644))
	}
	for _, r := range policy.Reasons() {
		if r == policy.ReasonAllowed || r == policy.ReasonExcluded {
			continue
		}
		rec := httptest.NewRecorder()
		require.NoError(t, p.Block(rec, BlockData{App: "Mail", Reason: r, Policy: "mobile-risk", Risk: "high", Vendor: "acme",
			MaxRisk: "low", Platform: "ios", OSVersion: "15.2", MinOS: "16.0", RequestID: "9f2c4e1a0b7d-1k3",
			RetryURL: "/owa/", SignOutURL: "/.riskgate/logout"}))
		save("block-"+string(r), rec)
	}
	rec := httptest.NewRecorder()
	require.NoError(t, p.SignOut(rec, SignOutData{Action: LogoutPath, Token: "t", Return: "/owa/"}))
	save("sign-out", rec)
	for _, s := range []int{401, 404, 500, 502} {
		rec := httptest.NewRecorder()
		require.NoError(t, p.Error(rec, s, ErrorData{App: "Mail", RequestID: "9f2c4e1a0b7d-1k4", RetryURL: "/owa/", SignInURL: "/.riskgate/login?rd=%2Fowa%2F"}))
		save(strings.ToLower(strings.ReplaceAll(http.StatusText(s), " ", "-")), rec)
	}
}
