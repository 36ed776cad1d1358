package e2e_test

import (
	"context"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestBrowserSignOut signs Alice in to Mail in a real headless Chromium,
// opens riskgate's sign-out link, checks that the confirmation page alone
// does not sign her out, presses "Sign out" and checks that the session is
// gone: the form went through riskgate and the issuer's end_session_endpoint
// (which the page's Content-Security-Policy form-action must allow) back to
// Mail, which now sends the browser to the issuer's user picker.
func TestBrowserSignOut(t *testing.T) {
	skipWithoutChromium(t)
	d := startDemo(t)
	b := newBrowser(t)
	ctx := b.ctx
	logoutURL := d.proxyURL + "/.riskgate/logout?rd=" + url.QueryEscape("/mail/")
	signOutButton := chromedp.CSS(`form[method="post"] button[type="submit"]`)

	// 1. Sign in to Mail as Alice.
	b.signInToMail(d, "", "")

	// 2. The sign-out link shows a confirmation page; it does not sign out.
	openConfirmation := func() {
		t.Helper()
		resp, err := chromedp.Run(ctx, chromedp.NavigateResponse(logoutURL))
		require.NoError(t, err)
		assert.EqualValues(t, 200, resp.Status)
		require.Equal(t, logoutURL, b.location(), "the confirmation page is served at the sign-out link")
		require.NoError(t, chromedp.Do(ctx, chromedp.WaitVisible(signOutButton)))
		text := b.bodyText()
		assert.Contains(t, text, "Sign out of")
		assert.Contains(t, text, "need to sign in again")
		form, err := chromedp.Run(ctx, chromedp.Evaluate[map[string]string](`(() => {
			const f = document.querySelector('form[method="post"]');
			const cancel = [...document.querySelectorAll('a.btn')].find(a => a.textContent.trim() == 'Cancel');
			return {action: f.action, csrf: f.elements.csrf.value, rd: f.elements.rd.value,
				button: f.querySelector('button').textContent.trim(), cancel: cancel ? cancel.href : ''};
		})()`))
		require.NoError(t, err)
		assert.Equal(t, d.proxyURL+"/.riskgate/logout", form["action"])
		assert.NotEmpty(t, form["csrf"], "a CSRF token")
		assert.Equal(t, "/mail/", form["rd"])
		assert.Equal(t, "Sign out", form["button"])
		assert.Equal(t, d.mailURL, form["cancel"], "Cancel goes back to Mail")
		csp := ""
		for k, v := range resp.Headers {
			if strings.EqualFold(k, "Content-Security-Policy") {
				csp, _ = v.(string)
			}
		}
		assert.Contains(t, csp, "form-action 'self' "+d.idpURL, "the form may be redirected to the issuer")
	}
	openConfirmation()
	mark := b.nav.count()
	resp, err := chromedp.Run(ctx, chromedp.NavigateResponse(d.mailURL))
	require.NoError(t, err)
	assert.EqualValues(t, 200, resp.Status)
	assert.Equal(t, d.mailURL, b.location())
	b.assertSignedInToMail()
	seen, _ := b.nav.since(mark)
	assert.Empty(t, withPrefix(seen, d.idpURL), "still signed in after only loading the confirmation page: %v", seen)

	openConfirmation()
	b.screenshot("4-sign-out.png")

	// 3. Sign out: riskgate clears the session and sends the browser to the
	// issuer's end_session_endpoint, which sends it back to Mail, which now
	// needs a sign-in.
	mark = b.nav.count()
	clickCtx, cancel := context.WithTimeout(ctx, 20*time.Second)
	defer cancel()
	_, err = chromedp.RunResponse(clickCtx, chromedp.Click(signOutButton))
	require.NoError(t, err, "press Sign out")
	assert.Empty(t, b.nav.blockedRequests(), "Chromium blocked nothing (Content-Security-Policy)")
	loc := b.location()
	require.False(t, strings.HasPrefix(loc, d.proxyURL+"/.riskgate/logout"), "the form submission left the confirmation page, at %s", loc)
	seen, _ = b.nav.since(mark)
	ends := withPrefix(seen, d.idpURL+"/logout?")
	require.Len(t, ends, 1, "went once through the issuer's end_session_endpoint: %v", seen)
	end, err := url.Parse(ends[0])
	require.NoError(t, err)
	assert.Equal(t, "riskgate", end.Query().Get("client_id"))
	assert.Equal(t, d.mailURL, end.Query().Get("post_logout_redirect_uri"))
	assert.Contains(t, seen, d.mailURL, "back to Mail after the issuer: %v", seen)
	require.True(t, strings.HasPrefix(loc, d.idpURL+"/"), "Mail sent the signed-out browser to the issuer, at %s", loc)
	require.NoError(t, chromedp.Do(clickCtx, chromedp.WaitVisible(aliceButton)), "the issuer's user picker")

	// 4. Opening Mail again asks for a sign-in: the session is gone.
	mark = b.nav.count()
	resp, err = chromedp.Run(ctx, chromedp.NavigateResponse(d.mailURL))
	require.NoError(t, err)
	assert.EqualValues(t, 200, resp.Status)
	loc = b.location()
	require.True(t, strings.HasPrefix(loc, d.idpURL+"/"), "expected the issuer's sign-in page, at %s", loc)
	require.NoError(t, chromedp.Do(ctx, chromedp.WaitVisible(aliceButton)))
	assert.Contains(t, b.bodyText(), "Sign in to riskgate")
	seen, _ = b.nav.since(mark)
	assert.NotEmpty(t, withPrefix(seen, d.proxyURL+"/.riskgate/login?"), "went through riskgate's login path: %v", seen)
	assert.Empty(t, b.nav.blockedRequests(), "Chromium blocked nothing")
}
