package main

import (
	"encoding/json"
	"net"
	"net/http"
	"net/http/cookiejar"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/riskgate/riskgate/internal/oidctest"
	"github.com/riskgate/riskgate/policy"
)

// freeAddr returns a 127.0.0.1 address that was free a moment ago: the
// browser login needs the proxy's address in auth.redirect_url before
// riskgate starts.
func freeAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	addr := ln.Addr().String()
	require.NoError(t, ln.Close())
	return addr
}

// browserGet signs in through the authorization code flow as needed (the
// test issuer approves at once) and returns the final response.
func browserGet(t *testing.T, c *http.Client, url string) response {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, url, nil)
	require.NoError(t, err)
	req.Header.Set("Accept", "text/html")
	resp, err := c.Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	r := response{Status: resp.StatusCode}
	if resp.StatusCode == http.StatusOK && strings.HasPrefix(resp.Header.Get("Content-Type"), "application/json") {
		require.NoError(t, json.NewDecoder(resp.Body).Decode(&r.Seen))
	}
	return r
}

// TestReloadDeviceSourcesReachBrowserLogins: a reload that adds a token
// claim device source (auth section unchanged) applies to browser sign-ins:
// the login keeps the claim in the session.
func TestReloadDeviceSourcesReachBrowserLogins(t *testing.T) {
	t.Parallel()
	iss := oidctest.New(t)
	addr := freeAddr(t)
	iss.AddClient(oidctest.Client{ID: "riskgate", Secret: "client-secret",
		RedirectURIs: []string{"http://" + addr + "/.riskgate/callback"}})
	iss.AddUser(testUser, map[string]any{"deviceid": "dev-1", "groups": []string{"staff"}})
	v := newVendor(t)
	v.set("dev-1", policy.LevelSecured, testUser, "ios", "17.4")
	up := newUpstream(t)

	p := configParams{Issuer: iss.URL, Upstream: up.URL,
		Vendors: vendorYAML("acme", v.url(), time.Hour, false), Policies: policyYAML("p", "low"),
		Sources: "    - query: DeviceId\n"}
	render := func() string {
		c := renderConfig(p)
		c = strings.Replace(c, "listen: 127.0.0.1:0", "listen: "+addr, 1)
		return strings.Replace(c, "http://127.0.0.1/.riskgate/callback", "http://"+addr+"/.riskgate/callback", 1)
	}
	path := filepath.Join(t.TempDir(), "riskgate.yaml")
	writeFile(t, path, render())
	s := startServe(t, path)
	s.waitReady(t)

	newBrowser := func() *http.Client {
		jar, err := cookiejar.New(nil)
		require.NoError(t, err)
		return &http.Client{Jar: jar, Transport: &http.Transport{}, Timeout: 15 * time.Second}
	}

	// No claim source yet: a signed-in browser has no device.
	before := newBrowser()
	r := browserGet(t, before, s.proxyURL+"/mail")
	require.Equal(t, http.StatusForbidden, r.Status)

	// Add the claim source; the auth section is unchanged.
	p.Sources = "    - claim: deviceid\n    - query: DeviceId\n"
	replaceFile(t, path, render())
	require.Eventually(t, func() bool {
		ok, _, _ := s.reloads(t)
		return ok >= 2
	}, waitTimeout, pollInterval, "the new config was not reloaded")
	_, failed, _ := s.reloads(t)
	require.Zero(t, failed)

	r = browserGet(t, newBrowser(), s.proxyURL+"/mail")
	require.Equal(t, http.StatusOK, r.Status, "a browser signed in after the reload is identified by its claim")
	assert.Equal(t, "dev-1", r.Seen.Device)
	assert.Equal(t, testUser, r.Seen.User)

	// A browser signed in before the reload stays signed in (its session
	// has no device claim, so it is blocked, not sent to the login).
	before.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	r = browserGet(t, before, s.proxyURL+"/mail")
	assert.Equal(t, http.StatusForbidden, r.Status, "the session cookie is still accepted")
	require.NoError(t, s.stop())
}
